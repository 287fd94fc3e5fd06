//! `postern qshape`: the queue's domain and age distribution (Postfix
//! qshape(1)), in qshape's table: one row per recipient domain (`-s`:
//! sender domain; the null sender is `MAILER-DAEMON`), the first column
//! `T` the total, then counts per age bucket in minutes, `5 10 20 40 80
//! 160 320 640 1280 1280+` by default (`-t` the first bucket's minutes,
//! `-b` the number of buckets, `-l` linear instead of doubling), a
//! `TOTAL` row first and the rest sorted by total, most first. `-p` adds
//! parent domains (`.example.com`) with at least `-m` (5) subdomains.
//! Rows are right-justified to `-w` (80) columns; a domain too long for
//! its field is cut to its last characters behind a `+`.
//!
//! The queues are `incoming` and `active` unless others are named, as
//! in Postfix. Recipients count while they are still to deliver (a final
//! result in the status log takes one out); the age is from the
//! envelope's arrival time. Files that vanish meanwhile are skipped, and
//! unreadable ones are skipped with a warning.

use mail_config::{Main, settings};
use mail_queue::{Queue, State};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// `postern qshape` options (qshape's letters).
#[derive(Debug, Clone, clap::Args)]
pub struct QshapeOptions {
    /// Show sender domains instead of recipient domains.
    #[arg(short = 's')]
    senders: bool,
    /// Also show parent domains (with a leading dot).
    #[arg(short = 'p')]
    parents: bool,
    /// With -p: the fewest subdomains a parent domain needs for its row.
    #[arg(short = 'm', value_name = "min_subdomains", default_value_t = 5)]
    min_subdomains: usize,
    /// The number of age buckets.
    #[arg(short = 'b', value_name = "bucket_count", default_value_t = 10)]
    buckets: usize,
    /// The first bucket's age limit in minutes.
    #[arg(short = 't', value_name = "bucket_time", default_value_t = 5)]
    bucket_time: u64,
    /// Buckets of equal width instead of doubling ones.
    #[arg(short = 'l')]
    linear: bool,
    /// The output width (at least 80).
    #[arg(short = 'w', value_name = "terminal_width", default_value_t = 80)]
    width: usize,
    /// Queues to look at (default: incoming active).
    #[arg(value_name = "queue_name")]
    queues: Vec<String>,
}

/// The table's parameters, checked.
#[derive(Debug, Clone, Copy)]
struct Shape {
    buckets: usize,
    tick_secs: u64,
    linear: bool,
    width: usize,
}

/// Counts per domain: `[total, bucket 1, ..., bucket N]`.
#[derive(Debug, Default)]
struct Table {
    rows: HashMap<String, Vec<u64>>,
    subdomains: HashMap<String, usize>,
}

impl Table {
    fn add(&mut self, shape: Shape, domain: &str, bucket: usize, parents: bool) {
        let width = shape.buckets + 1;
        let total = self.rows.entry("TOTAL".to_owned()).or_insert_with(|| vec![0; width]);
        total[0] += 1;
        total[bucket] += 1;
        let mut d = domain.to_owned();
        let mut new = false;
        loop {
            let row = self.rows.entry(d.clone()).or_insert_with(|| vec![0; width]);
            let old = row[0] > 0;
            row[0] += 1;
            row[bucket] += 1;
            if new {
                *self.subdomains.entry(d.clone()).or_default() += 1;
            }
            new = !old;
            if !parents {
                break;
            }
            // qshape's `s/^(?:\.)?[^.]+\.(.*\.)/.$1/`: drop the first
            // label while at least two remain after it (no TLD rows).
            let rest = d.strip_prefix('.').unwrap_or(&d);
            let Some((_, tail)) = rest.split_once('.') else { break };
            if !tail.contains('.') {
                break;
            }
            d = format!(".{tail}");
        }
    }
}

/// Which bucket (1-based) a message of `age_secs` falls in.
fn bucket(shape: Shape, age_secs: u64) -> usize {
    let m = age_secs as f64 / shape.tick_secs as f64;
    if m < 1.0 {
        return 1;
    }
    let b = if shape.linear { m as usize + 1 } else { 2 + m.log2() as usize };
    b.min(shape.buckets)
}

/// The domain an address is counted under: after the last `@`, with a
/// trailing dot removed and lower-cased; `MAILER-DAEMON` for `<>`.
fn domain_of(address: &str) -> String {
    if address.is_empty() {
        return "MAILER-DAEMON".to_owned();
    }
    let d = address.rsplit_once('@').map_or(address, |(_, d)| d).to_ascii_lowercase();
    let d = d.replace("..", ".");
    let d = d.strip_suffix('.').unwrap_or(&d);
    d.strip_prefix('.').unwrap_or(d).to_owned()
}

fn format_table(table: &Table, shape: Shape, min_subdomains: usize) -> String {
    let zero = vec![0u64; shape.buckets + 1];
    let total = table.rows.get("TOTAL").unwrap_or(&zero);
    // The headings and each column's width, as qshape computes them.
    let mut heads: Vec<String> = Vec::new();
    let mut widths: Vec<usize> = Vec::new();
    let mut dw = shape.width as i64;
    let tick_minutes = shape.tick_secs / 60;
    let mut t: u64 = 0;
    for i in 0..=shape.buckets {
        let h = if i == 0 {
            "T".to_owned()
        } else if i == shape.buckets {
            format!("{t}+")
        } else {
            t.to_string()
        };
        let mut l = total.get(i).copied().unwrap_or(0).to_string().len().max(h.len());
        l = if l > 2 { l + 1 } else { 3 };
        heads.push(h);
        widths.push(l);
        dw -= l as i64;
        if i + 1 < shape.buckets {
            t += if t > 0 && !shape.linear { t } else { tick_minutes };
        }
    }
    let dw = dw.max(18) as usize;
    let mut out = String::new();
    let mut row = |name: &str, cells: &[String]| {
        let len = name.chars().count();
        if len > dw {
            let chars: Vec<char> = name.chars().collect();
            if name.starts_with('.') {
                out.push_str(".+");
                out.extend(&chars[len - (dw - 2)..]);
            } else {
                out.push('+');
                out.extend(&chars[len - (dw - 1)..]);
            }
        } else {
            let _ = write!(out, "{}{name}", " ".repeat(dw - len));
        }
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "{cell:>w$}");
        }
        out.push('\n');
    };
    row("", &heads);
    let mut names: Vec<&String> = table.rows.keys().collect();
    if !names.iter().any(|n| n.as_str() == "TOTAL") {
        row("TOTAL", &zero.iter().map(ToString::to_string).collect::<Vec<_>>());
    }
    // Most first, then shorter names first (qshape's order), then by name
    // so the output does not depend on hashing.
    names.sort_by(|a, b| {
        table.rows[*b][0]
            .cmp(&table.rows[*a][0])
            .then(a.len().cmp(&b.len()))
            .then((*a == "TOTAL").cmp(&(*b == "TOTAL")).reverse())
            .then(a.cmp(b))
    });
    for name in names {
        if name.starts_with('.')
            && table.subdomains.get(name).copied().unwrap_or(0) < min_subdomains
        {
            continue;
        }
        let cells: Vec<String> = table.rows[name].iter().map(ToString::to_string).collect();
        row(name, &cells);
    }
    out
}

/// Counts the messages of `states` in `queue` as of `now`.
fn collect(queue: &Queue, states: &[State], shape: Shape, opts: &QshapeOptions, now: u64) -> Table {
    let mut table = Table::default();
    for &state in states {
        let ids = match queue.scan(state) {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("postern: warning: qshape: {e}");
                continue;
            }
        };
        for id in ids {
            let envelope = match queue.read_envelope(state, &id) {
                Ok(e) => e,
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    eprintln!("postern: warning: qshape: {e}");
                    continue;
                }
            };
            let b = bucket(shape, now.saturating_sub(envelope.arrival));
            if opts.senders {
                let s = envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default();
                table.add(shape, &domain_of(&s), b, opts.parents);
                continue;
            }
            let finals: HashSet<u32> = queue
                .read_status(&id)
                .map(|r| r.iter().filter(|r| r.outcome.is_final()).map(|r| r.recipient).collect())
                .unwrap_or_default();
            for (i, r) in envelope.recipients.iter().enumerate() {
                if !finals.contains(&(i as u32)) {
                    table.add(shape, &domain_of(&r.address.to_string()), b, opts.parents);
                }
            }
        }
    }
    table
}

/// `postern qshape`.
pub fn qshape(dir: &Path, opts: &QshapeOptions) -> Result<(), String> {
    let main = Main::load(dir).map_err(|e| e.to_string())?;
    let queue = Queue::new(settings::Common::new(&main).queue_directory);
    let names: Vec<&str> = if opts.queues.is_empty() {
        vec!["incoming", "active"]
    } else {
        opts.queues.iter().map(String::as_str).collect()
    };
    let mut states = Vec::new();
    for n in names {
        let s = match n {
            "maildrop" => State::Maildrop,
            "incoming" => State::Incoming,
            "active" => State::Active,
            "deferred" => State::Deferred,
            "hold" => State::Hold,
            "corrupt" => State::Corrupt,
            other => return Err(format!("qshape: unknown queue {other}")),
        };
        if s == State::Maildrop {
            // Not queue files yet: nothing to count (pickup takes them).
            continue;
        }
        states.push(s);
    }
    let shape = Shape {
        buckets: opts.buckets.clamp(1, 64),
        tick_secs: opts.bucket_time.clamp(1, 1 << 32) * 60,
        linear: opts.linear,
        width: opts.width.clamp(80, 4096),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let table = collect(&queue, &states, shape, opts, now);
    let text = format_table(&table, shape, opts.min_subdomains);
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape { buckets: 10, tick_secs: 300, linear: false, width: 80 }
    }

    #[test]
    fn empty_table_is_postfix_qshape_exactly() {
        assert_eq!(
            format_table(&Table::default(), shape(), 5),
            "                                         T  5 10 20 40 80 160 320 640 1280 1280+\n\
             \x20                                 TOTAL  0  0  0  0  0  0   0   0   0    0     0\n"
        );
    }

    #[test]
    fn counts_and_orders_as_postfix_qshape() {
        // What Postfix's qshape printed for 3 + 1 + 1 recipients under
        // five minutes old (its `deferred` run, captured in this form).
        let mut t = Table::default();
        for d in ["remote.example", "remote.example", "remote3.example", "remote.example"] {
            t.add(shape(), d, 1, false);
        }
        t.add(shape(), "remote2.example", 1, false);
        assert_eq!(
            format_table(&t, shape(), 5),
            "                                         T  5 10 20 40 80 160 320 640 1280 1280+\n\
             \x20                                 TOTAL  5  5  0  0  0  0   0   0   0    0     0\n\
             \x20                        remote.example  3  3  0  0  0  0   0   0   0    0     0\n\
             \x20                       remote2.example  1  1  0  0  0  0   0   0   0    0     0\n\
             \x20                       remote3.example  1  1  0  0  0  0   0   0   0    0     0\n"
        );
        let s = Shape { buckets: 5, tick_secs: 120, ..shape() };
        let mut t = Table::default();
        t.add(s, "a.example", bucket(s, 0), false);
        t.add(s, "a.example", bucket(s, 3 * 60), false);
        // Nine minutes is in [8, 16): the "16" column.
        t.add(s, "a.example", bucket(s, 9 * 60), false);
        t.add(s, "a.example", bucket(s, 99 * 60), false);
        assert_eq!(
            format_table(&t, s, 5),
            "                                                               T  2  4  8 16 16+\n\
             \x20                                                       TOTAL  4  1  1  0  1   1\n\
             \x20                                                   a.example  4  1  1  0  1   1\n"
        );
    }

    #[test]
    fn buckets_double_from_the_first() {
        let s = shape();
        assert_eq!(bucket(s, 0), 1);
        assert_eq!(bucket(s, 299), 1);
        assert_eq!(bucket(s, 300), 2);
        assert_eq!(bucket(s, 599), 2);
        assert_eq!(bucket(s, 600), 3);
        assert_eq!(bucket(s, 1200), 4);
        assert_eq!(bucket(s, 10 * 86400), 10);
        let l = Shape { linear: true, ..s };
        assert_eq!(bucket(l, 900), 4);
    }

    #[test]
    fn domains_and_parents() {
        assert_eq!(domain_of(""), "MAILER-DAEMON");
        assert_eq!(domain_of("A@Mail.Example.COM."), "mail.example.com");
        let mut t = Table::default();
        for sub in ["a", "b", "c", "d", "e"] {
            t.add(shape(), &format!("{sub}.example.com"), 1, true);
        }
        t.add(shape(), "x.example.org", 1, true);
        let text = format_table(&t, shape(), 5);
        assert!(text.contains("      .example.com  5  5"), "{text}");
        assert!(!text.contains(" .example.org "), "fewer than 5 subdomains: {text}");
        assert!(!text.contains(" .com "), "no TLD rows: {text}");
    }
}
