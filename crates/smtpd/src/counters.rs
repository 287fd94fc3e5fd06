//! The per-session command counters of Postfix's `disconnect from` line:
//! `disconnect from host[addr] ehlo=1 mail=1 rcpt=0/1 ... commands=4/5`.
//!
//! `smtp_proto::Server` says which command each reply answers
//! ([`smtp_proto::Server::answered`]), so the session feeds it whatever
//! it reads, pipelined batches included, and counts from the tags; DATA
//! framing and command boundaries are decided only by the machine.

use std::fmt;

use smtp_proto::Verb;

/// Per-session command counts: `(succeeded, total)` per verb.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: [(u32, u32); Verb::ALL.len()],
}

impl Counters {
    /// Counts one command and whether its reply was a success (< 400).
    pub(crate) fn record(&mut self, verb: Verb, ok: bool) {
        let Some(i) = Verb::ALL.iter().position(|v| *v == verb) else { return };
        let c = &mut self.counts[i];
        c.1 = c.1.saturating_add(1);
        if ok {
            c.0 = c.0.saturating_add(1);
        }
    }
}

impl fmt::Display for Counters {
    /// Postfix's shape: `ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`, a
    /// count alone when every command of that kind succeeded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut total = (0u32, 0u32);
        for (verb, (ok, all)) in Verb::ALL.iter().zip(self.counts) {
            if all == 0 {
                continue;
            }
            total = (total.0.saturating_add(ok), total.1.saturating_add(all));
            write_count(f, verb.name(), ok, all)?;
            f.write_str(" ")?;
        }
        write_count(f, "commands", total.0, total.1)
    }
}

fn write_count(f: &mut fmt::Formatter<'_>, name: &str, ok: u32, all: u32) -> fmt::Result {
    if ok == all { write!(f, "{name}={all}") } else { write!(f, "{name}={ok}/{all}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_look_like_postfix() {
        let mut c = Counters::default();
        assert_eq!(c.to_string(), "commands=0");
        c.record(Verb::Ehlo, true);
        c.record(Verb::Mail, true);
        c.record(Verb::Rcpt, false);
        c.record(Verb::Rcpt, true);
        c.record(Verb::Data, true);
        c.record(Verb::Quit, true);
        assert_eq!(c.to_string(), "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6");
    }
}
