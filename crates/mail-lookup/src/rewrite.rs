//! cleanup(8)'s address rewriting, on [`crate::maps`] tables: canonical
//! mapping (`sender_canonical_maps` or `recipient_canonical_maps`, then
//! `canonical_maps`, each for the address classes its `*_classes`
//! parameter names: envelope sender and recipients here, header senders
//! and recipients through [`mail_cleanup::HeaderRewrite`], which
//! [`Rewriter`] implements for cleanup's header pass), then virtual alias
//! expansion of each envelope recipient (`virtual_alias_maps`, one address
//! to many, recursively), and the virtual alias domain test
//! (`virtual_alias_domains`).
//!
//! Semantics are Postfix's (canonical(5), virtual(5)):
//! - lookup order `user@domain`, `user@domain` without the extension,
//!   `user` and `user` without the extension when the domain is local
//!   (`$myorigin` or `$mydestination`), `@domain`;
//! - a value `@otherdomain` keeps the user and replaces the domain; a
//!   value without a domain gets `@$myorigin`;
//! - an extension the key did not include is appended to the result
//!   (`propagate_unmatched_extensions = canonical, virtual`, the default);
//! - a virtual alias whose expansion names itself (`a@x  a@x, b@x`)
//!   keeps that address as a final one instead of looping;
//! - expansion deeper than `virtual_alias_recursion_limit` or wider than
//!   `virtual_alias_expansion_limit` is an error: the caller defers the
//!   message (Postfix: "unreasonable virtual_alias_maps map nesting",
//!   the message is not accepted), it never silently drops recipients.
//!
//! Lookup failures are errors the caller answers with a temporary
//! failure. Used by smtpd (at MAIL and RCPT, so a failure is a 4xx reply;
//! and for the headers at the end of DATA), pickup (envelope and
//! headers) and local delivery (the envelope of forwarded copies).

use std::path::PathBuf;

use mail_cleanup::{HeaderClass, HeaderRewrite};
use mail_config::settings::CanonicalClasses;
use mail_types::Address;

use crate::Error;
use crate::maps::{self, Maps};

/// What [`Rewriter::new`] needs, from main.toml. The `Default` has no
/// tables, and every class on for each (so a test's table applies
/// everywhere unless it says otherwise).
#[derive(Debug, Clone)]
pub struct RewriteParams {
    /// `canonical_maps` (files).
    pub canonical_maps: Vec<PathBuf>,
    /// `sender_canonical_maps` (files).
    pub sender_canonical_maps: Vec<PathBuf>,
    /// `recipient_canonical_maps` (files).
    pub recipient_canonical_maps: Vec<PathBuf>,
    /// `virtual_alias_maps` (files).
    pub virtual_alias_maps: Vec<PathBuf>,
    /// `virtual_alias_domains` as listed: domain names and `type:table`
    /// or `/path` entries (a domain is in a table when it is a key).
    pub virtual_alias_domains: Vec<String>,
    /// Where relative table names in `virtual_alias_domains` are.
    pub config_dir: PathBuf,
    /// `virtual_alias_recursion_limit`.
    pub virtual_alias_recursion_limit: usize,
    /// `virtual_alias_expansion_limit`.
    pub virtual_alias_expansion_limit: usize,
    /// `recipient_delimiter`.
    pub recipient_delimiter: String,
    /// `myorigin`.
    pub myorigin: String,
    /// The `mydestination` domains, lower-case, no trailing dot.
    pub mydestination: Vec<String>,
    /// `canonical_classes`.
    pub canonical_classes: CanonicalClasses,
    /// `sender_canonical_classes`.
    pub sender_canonical_classes: CanonicalClasses,
    /// `recipient_canonical_classes`.
    pub recipient_canonical_classes: CanonicalClasses,
}

impl Default for RewriteParams {
    fn default() -> RewriteParams {
        RewriteParams {
            canonical_maps: Vec::new(),
            sender_canonical_maps: Vec::new(),
            recipient_canonical_maps: Vec::new(),
            virtual_alias_maps: Vec::new(),
            virtual_alias_domains: Vec::new(),
            config_dir: PathBuf::new(),
            virtual_alias_recursion_limit: 1000,
            virtual_alias_expansion_limit: 1000,
            recipient_delimiter: String::new(),
            myorigin: String::new(),
            mydestination: Vec::new(),
            canonical_classes: CanonicalClasses::ALL,
            sender_canonical_classes: CanonicalClasses::ALL,
            recipient_canonical_classes: CanonicalClasses::ALL,
        }
    }
}

impl RewriteParams {
    /// The tables and limits of a loaded `main.toml`, for every program
    /// that rewrites (smtpd, pickup).
    pub fn from_settings(common: &mail_config::settings::Common) -> RewriteParams {
        let r = &common.rewrite;
        RewriteParams {
            canonical_maps: r.canonical_maps.clone(),
            sender_canonical_maps: r.sender_canonical_maps.clone(),
            recipient_canonical_maps: r.recipient_canonical_maps.clone(),
            virtual_alias_maps: r.virtual_alias_maps.clone(),
            virtual_alias_domains: r.virtual_alias_domains.clone(),
            config_dir: r.config_directory.clone(),
            virtual_alias_recursion_limit: r.virtual_alias_recursion_limit,
            virtual_alias_expansion_limit: r.virtual_alias_expansion_limit,
            recipient_delimiter: common.recipient_delimiter.clone(),
            myorigin: common.myorigin.clone(),
            mydestination: common.mydestination.domains().to_vec(),
            canonical_classes: r.canonical_classes,
            sender_canonical_classes: r.sender_canonical_classes,
            recipient_canonical_classes: r.recipient_canonical_classes,
        }
    }
}

/// One element of a domain list: a name, or a table whose keys are names.
#[derive(Debug)]
enum DomainEntry {
    Name(String),
    Table(Maps),
}

/// The rewriting tables, built once per process.
#[derive(Debug)]
pub struct Rewriter {
    canonical: Maps,
    sender_canonical: Maps,
    recipient_canonical: Maps,
    canonical_classes: CanonicalClasses,
    sender_classes: CanonicalClasses,
    recipient_classes: CanonicalClasses,
    virtual_alias: Maps,
    virtual_domains: Vec<DomainEntry>,
    recursion_limit: usize,
    expansion_limit: usize,
    delimiter: String,
    myorigin: String,
    mydestination: Vec<String>,
}

/// How often a canonical result is looked up again (Postfix's
/// cleanup_map11 loop bound).
const CANONICAL_ROUNDS: usize = 10;

impl Rewriter {
    /// The rewriter for `p`. `Err` is a configuration error (a table type
    /// Postern cannot read in `virtual_alias_domains`).
    pub fn new(p: RewriteParams) -> Result<Rewriter, String> {
        let mut virtual_domains = Vec::new();
        for e in &p.virtual_alias_domains {
            let is_table = e.contains('/') || e.contains(':');
            virtual_domains.push(if is_table {
                let file = maps::map_file(e, &p.config_dir)
                    .map_err(|why| format!("parameter \"virtual_alias_domains\": {why}"))?;
                DomainEntry::Table(Maps::new(vec![file]))
            } else {
                DomainEntry::Name(normalise(e))
            });
        }
        let mut r = Rewriter::empty_domains(p);
        r.virtual_domains = virtual_domains;
        Ok(r)
    }

    /// The rewriter for `p` without `virtual_alias_domains`, for programs
    /// that never ask whether a domain is a virtual alias domain (local
    /// delivery's forwarded copies): it cannot fail, so such a program
    /// need not stop over a domain list smtpd and pickup already refuse.
    pub fn envelope_only(p: RewriteParams) -> Rewriter {
        Rewriter::empty_domains(p)
    }

    fn empty_domains(p: RewriteParams) -> Rewriter {
        Rewriter {
            canonical: Maps::new(p.canonical_maps),
            sender_canonical: Maps::new(p.sender_canonical_maps),
            recipient_canonical: Maps::new(p.recipient_canonical_maps),
            canonical_classes: p.canonical_classes,
            sender_classes: p.sender_canonical_classes,
            recipient_classes: p.recipient_canonical_classes,
            virtual_alias: Maps::new(p.virtual_alias_maps),
            virtual_domains: Vec::new(),
            recursion_limit: p.virtual_alias_recursion_limit.max(1),
            expansion_limit: p.virtual_alias_expansion_limit.max(1),
            delimiter: p.recipient_delimiter,
            myorigin: normalise(&p.myorigin),
            mydestination: p.mydestination.iter().map(|d| normalise(d)).collect(),
        }
    }

    /// No table is configured: every address stays as it is.
    pub fn is_noop(&self) -> bool {
        self.canonical.is_empty()
            && self.sender_canonical.is_empty()
            && self.recipient_canonical.is_empty()
            && self.virtual_alias.is_empty()
    }

    fn is_local(&self, domain: &str) -> bool {
        let d = normalise(domain);
        d == self.myorigin || self.mydestination.contains(&d)
    }

    /// The envelope sender after `sender_canonical_maps` and
    /// `canonical_maps` (those whose classes hold `envelope_sender`).
    pub fn sender(&self, addr: &Address) -> Result<Address, Error> {
        self.canonical(addr, Class::EnvelopeSender)
    }

    /// An envelope recipient after `recipient_canonical_maps` and
    /// `canonical_maps` (those whose classes hold `envelope_recipient`).
    pub fn recipient_canonical(&self, addr: &Address) -> Result<Address, Error> {
        self.canonical(addr, Class::EnvelopeRecipient)
    }

    /// The side table (`sender_canonical_maps` or
    /// `recipient_canonical_maps`) and `canonical_maps`, each if it
    /// applies to `class`.
    fn tables(&self, class: Class) -> [Option<(&Maps, &'static str)>; 2] {
        let on = |c: &CanonicalClasses| match class {
            Class::EnvelopeSender => c.envelope_sender,
            Class::EnvelopeRecipient => c.envelope_recipient,
            Class::HeaderSender => c.header_sender,
            Class::HeaderRecipient => c.header_recipient,
        };
        let side = match class {
            Class::EnvelopeSender | Class::HeaderSender => on(&self.sender_classes)
                .then_some((&self.sender_canonical, "sender_canonical_maps")),
            Class::EnvelopeRecipient | Class::HeaderRecipient => on(&self.recipient_classes)
                .then_some((&self.recipient_canonical, "recipient_canonical_maps")),
        };
        let common = on(&self.canonical_classes).then_some((&self.canonical, "canonical_maps"));
        [side.filter(|(m, _)| !m.is_empty()), common.filter(|(m, _)| !m.is_empty())]
    }

    fn canonical(&self, addr: &Address, class: Class) -> Result<Address, Error> {
        let mut a = addr.clone();
        for (maps, name) in self.tables(class).into_iter().flatten() {
            a = self.canonical_one(maps, name, &a)?;
        }
        Ok(a)
    }

    /// A recipient after canonical mapping and virtual alias expansion:
    /// the final recipients, in order, without duplicates (at least one).
    pub fn recipient(&self, addr: &Address) -> Result<Vec<Address>, Error> {
        let a = self.recipient_canonical(addr)?;
        self.expand_virtual(&a)
    }

    /// Whether the recipient-side tables (`recipient_canonical_maps`,
    /// `canonical_maps`, `virtual_alias_maps`) know `addr`: Postfix's
    /// smtpd then counts it as a listed recipient before asking
    /// `local_recipient_maps`.
    pub fn knows_recipient(&self, addr: &Address) -> Result<bool, Error> {
        for m in [&self.recipient_canonical, &self.canonical, &self.virtual_alias] {
            if self.find(m, addr)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `addr` has a `virtual_alias_maps` entry.
    pub fn has_virtual_alias(&self, addr: &Address) -> Result<bool, Error> {
        Ok(self.find(&self.virtual_alias, addr)?.is_some())
    }

    /// Whether `domain` is a virtual alias domain (`virtual_alias_domains`:
    /// a listed name, or a key of a listed table).
    pub fn is_virtual_alias_domain(&self, domain: &str) -> Result<bool, Error> {
        let d = normalise(domain);
        if d.is_empty() {
            return Ok(false);
        }
        for e in &self.virtual_domains {
            match e {
                DomainEntry::Name(n) if *n == d => return Ok(true),
                DomainEntry::Name(_) => {}
                DomainEntry::Table(m) => {
                    if m.get(&d)?.is_some() {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn find(&self, maps: &Maps, addr: &Address) -> Result<Option<maps::AddressMatch>, Error> {
        if maps.is_empty() {
            return Ok(None);
        }
        let domain = addr.domain().unwrap_or(&self.myorigin);
        maps::address_lookup(maps, addr.local(), domain, self.is_local(domain), &self.delimiter)
    }

    /// The address a table value names for `addr`.
    fn result(
        &self,
        addr: &Address,
        m: &maps::AddressMatch,
        value: &str,
        table: &str,
    ) -> Result<Address, Error> {
        let value = value.trim();
        let value = value.strip_prefix('<').and_then(|v| v.strip_suffix('>')).unwrap_or(value);
        let bad = || Error::Rewrite(format!("{table}: bad address \"{value}\" for <{addr}>"));
        let mut out = if let Some(domain) = value.strip_prefix('@') {
            Address::new(addr.local(), Some(domain)).map_err(|_| bad())?
        } else {
            let a = Address::parse(value).map_err(|_| bad())?;
            if a.domain().is_none() && !self.myorigin.is_empty() {
                a.qualified(&self.myorigin)
            } else {
                a
            }
        };
        if let Some(ext) = &m.unmatched_extension
            && !m.domain_only
            && !value.starts_with('@')
            && let Some(first) = self.delimiter.chars().next()
            && !out.local().contains(|c| self.delimiter.contains(c))
        {
            let local = format!("{}{first}{ext}", out.local());
            out = Address::new(&local, out.domain()).map_err(|_| bad())?;
        }
        Ok(out)
    }

    fn canonical_one(&self, maps: &Maps, table: &str, addr: &Address) -> Result<Address, Error> {
        let mut cur = addr.clone();
        for _ in 0..CANONICAL_ROUNDS {
            let Some(m) = self.find(maps, &cur)? else { return Ok(cur) };
            // canonical(5) maps one address to one: the first of a list.
            let first = m.value.split([',', ' ', '\t']).find(|s| !s.is_empty()).unwrap_or("");
            let next = self.result(&cur, &m, first, table)?;
            if same(&next, &cur) {
                return Ok(cur);
            }
            cur = next;
        }
        Err(Error::Rewrite(format!(
            "unreasonable {table} map nesting for <{addr}> (more than {CANONICAL_ROUNDS} rounds)"
        )))
    }

    /// Virtual alias expansion of one (canonical) recipient.
    pub fn expand_virtual(&self, addr: &Address) -> Result<Vec<Address>, Error> {
        let mut out: Vec<Address> = Vec::new();
        if self.virtual_alias.is_empty() {
            out.push(addr.clone());
            return Ok(out);
        }
        // Depth-first with an explicit stack, so the order is the table's
        // and nesting costs no native stack. A self-reference is final:
        // it waits on the stack for its turn but is not looked up again.
        let mut stack: Vec<(Address, usize, bool)> = vec![(addr.clone(), 0, false)];
        let mut looked_up = 0usize;
        while let Some((a, depth, last)) = stack.pop() {
            let found = if last { None } else { self.find(&self.virtual_alias, &a)? };
            let Some(m) = found else {
                push_unique(&mut out, a);
                continue;
            };
            looked_up += 1;
            if depth >= self.recursion_limit {
                return Err(Error::Rewrite(format!(
                    "unreasonable virtual_alias_maps map nesting for <{addr}> \
                     (virtual_alias_recursion_limit = {})",
                    self.recursion_limit
                )));
            }
            let mut next = Vec::new();
            for piece in m.value.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
                next.push(self.result(&a, &m, piece, "virtual_alias_maps")?);
            }
            for r in next.into_iter().rev() {
                let last = same(&r, &a);
                stack.push((r, depth + 1, last));
            }
            if out.len() + stack.len() > self.expansion_limit || looked_up > self.expansion_limit {
                return Err(Error::Rewrite(format!(
                    "unreasonable virtual_alias_maps map expansion size for <{addr}> \
                     (virtual_alias_expansion_limit = {})",
                    self.expansion_limit
                )));
            }
        }
        Ok(out)
    }
}

/// The four address classes of Postfix's `*_canonical_classes`.
#[derive(Debug, Clone, Copy)]
enum Class {
    EnvelopeSender,
    EnvelopeRecipient,
    HeaderSender,
    HeaderRecipient,
}

fn header_class(class: HeaderClass) -> Class {
    match class {
        HeaderClass::Sender => Class::HeaderSender,
        HeaderClass::Recipient => Class::HeaderRecipient,
    }
}

/// cleanup's header pass asks this for each address of a sender or
/// recipient header (canonical mapping only: virtual aliases change
/// where mail goes, not what its headers say, as in Postfix).
/// These tables as cleanup's header pass takes them, when some table
/// rewrites header addresses (`*_canonical_classes`); `None` lets cleanup
/// skip the pass, as it does for most messages.
pub fn header_rewriter(r: &std::sync::Arc<Rewriter>) -> Option<mail_cleanup::HeaderRewriter> {
    (r.rewrites(HeaderClass::Sender) || r.rewrites(HeaderClass::Recipient)).then(|| {
        mail_cleanup::HeaderRewriter(std::sync::Arc::clone(r) as std::sync::Arc<dyn HeaderRewrite>)
    })
}

impl HeaderRewrite for Rewriter {
    fn rewrites(&self, class: HeaderClass) -> bool {
        self.tables(header_class(class)).iter().any(Option::is_some)
    }

    fn rewrite(&self, addr: &Address, class: HeaderClass) -> Result<Option<Address>, String> {
        let new = self.canonical(addr, header_class(class)).map_err(|e| e.to_string())?;
        Ok((new != *addr).then_some(new))
    }
}

fn push_unique(out: &mut Vec<Address>, a: Address) {
    if !out.iter().any(|o| same(o, &a)) {
        out.push(a);
    }
}

fn same(a: &Address, b: &Address) -> bool {
    a.domain() == b.domain() && a.local().eq_ignore_ascii_case(b.local())
}

fn normalise(d: &str) -> String {
    let d = d.trim();
    d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn rewriter(
        dir: &Path,
        canonical: &str,
        virt: &str,
        extra: impl FnOnce(&mut RewriteParams),
    ) -> Rewriter {
        let c = dir.join("canonical");
        let v = dir.join("virtual");
        std::fs::write(&c, canonical).unwrap();
        std::fs::write(&v, virt).unwrap();
        let mut p = RewriteParams {
            canonical_maps: vec![c],
            virtual_alias_maps: vec![v.clone()],
            virtual_alias_domains: vec![format!("hash:{}", v.display())],
            config_dir: dir.to_owned(),
            virtual_alias_recursion_limit: 1000,
            virtual_alias_expansion_limit: 1000,
            recipient_delimiter: "+".into(),
            myorigin: "postern.test".into(),
            mydestination: vec!["postern.test".into(), "localhost".into()],
            ..RewriteParams::default()
        };
        extra(&mut p);
        Rewriter::new(p).unwrap()
    }

    fn texts(v: Vec<Address>) -> Vec<String> {
        v.into_iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn canonical_rules() {
        let d = tempfile::tempdir().unwrap();
        let r = rewriter(
            d.path(),
            "root@postern.test  Admin.Team@postern.test\n\
             joe                 joseph\n\
             @old.example        @new.example\n\
             a@b.example         c@d.example\n\
             c@d.example         e@f.example\n",
            "",
            |_| {},
        );
        assert_eq!(r.sender(&addr("root@postern.test")).unwrap(), "Admin.Team@postern.test");
        // `user` keys only in local domains; the result gets @myorigin.
        assert_eq!(r.sender(&addr("joe@localhost")).unwrap(), "joseph@postern.test");
        assert_eq!(r.sender(&addr("joe@elsewhere.example")).unwrap(), "joe@elsewhere.example");
        // Unmatched extensions carry over.
        assert_eq!(r.sender(&addr("joe+x@postern.test")).unwrap(), "joseph+x@postern.test");
        assert_eq!(r.sender(&addr("ana@old.example")).unwrap(), "ana@new.example");
        assert_eq!(r.sender(&addr("ana+q@old.example")).unwrap(), "ana+q@new.example");
        // Results are looked up again.
        assert_eq!(r.recipient_canonical(&addr("a@b.example")).unwrap(), "e@f.example");
        assert_eq!(r.sender(&addr("x@y.example")).unwrap(), "x@y.example");
    }

    #[test]
    fn sender_and_recipient_tables_apply_to_their_side_only() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("sender");
        let rc = d.path().join("rcpt");
        std::fs::write(&s, "ana@postern.test  ana.s@postern.test\n").unwrap();
        std::fs::write(&rc, "ana@postern.test  ana.r@postern.test\n").unwrap();
        let r = rewriter(d.path(), "", "", |p| {
            p.sender_canonical_maps = vec![s.clone()];
            p.recipient_canonical_maps = vec![rc.clone()];
        });
        assert_eq!(r.sender(&addr("ana@postern.test")).unwrap(), "ana.s@postern.test");
        assert_eq!(r.recipient_canonical(&addr("ana@postern.test")).unwrap(), "ana.r@postern.test");
    }

    #[test]
    fn classes_choose_envelope_and_header_addresses() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("sender");
        let rc = d.path().join("rcpt");
        std::fs::write(&s, "ana@postern.test  ana.s@postern.test\n").unwrap();
        std::fs::write(&rc, "ana@postern.test  ana.r@postern.test\n").unwrap();
        let hs = HeaderClass::Sender;
        let hr = HeaderClass::Recipient;
        // The defaults: every table applies to envelope and headers.
        let r = rewriter(d.path(), "bia  bia.c@postern.test\n", "", |p| {
            p.sender_canonical_maps = vec![s.clone()];
            p.recipient_canonical_maps = vec![rc.clone()];
        });
        assert!(r.rewrites(hs) && r.rewrites(hr));
        assert_eq!(
            r.rewrite(&addr("ana@postern.test"), hs).unwrap().unwrap(),
            "ana.s@postern.test"
        );
        assert_eq!(
            r.rewrite(&addr("ana@postern.test"), hr).unwrap().unwrap(),
            "ana.r@postern.test"
        );
        assert_eq!(r.rewrite(&addr("bia"), hr).unwrap().unwrap(), "bia.c@postern.test");
        assert_eq!(r.rewrite(&addr("caio@postern.test"), hs).unwrap(), None);
        // canonical_classes = envelope_sender: canonical_maps leaves the
        // recipients and the headers alone.
        let r = rewriter(d.path(), "bia  bia.c@postern.test\n", "", |p| {
            p.canonical_classes = CanonicalClasses { envelope_sender: true, ..Default::default() };
        });
        assert!(!r.rewrites(hs) && !r.rewrites(hr));
        assert_eq!(r.sender(&addr("bia@postern.test")).unwrap(), "bia.c@postern.test");
        assert_eq!(r.recipient_canonical(&addr("bia@postern.test")).unwrap(), "bia@postern.test");
        assert_eq!(r.rewrite(&addr("bia@postern.test"), hs).unwrap(), None);
        // sender_canonical_classes = header_sender: only the From header.
        let r = rewriter(d.path(), "", "", |p| {
            p.canonical_maps = Vec::new();
            p.sender_canonical_maps = vec![s.clone()];
            p.sender_canonical_classes =
                CanonicalClasses { header_sender: true, ..Default::default() };
        });
        assert_eq!(r.sender(&addr("ana@postern.test")).unwrap(), "ana@postern.test");
        assert_eq!(
            r.rewrite(&addr("ana@postern.test"), hs).unwrap().unwrap(),
            "ana.s@postern.test"
        );
        assert!(!r.rewrites(hr));
        // A table that cannot be read is an error for the headers too.
        let r = rewriter(d.path(), "", "", |p| p.canonical_maps = vec![d.path().join("absent")]);
        assert!(r.rewrite(&addr("ana@postern.test"), hs).is_err());
    }

    #[test]
    fn virtual_expansion() {
        let d = tempfile::tempdir().unwrap();
        let r = rewriter(
            d.path(),
            "",
            "vdomain.test         anything\n\
             info@vdomain.test    suporte, ana@postern.test\n\
             team@postern.test    info@vdomain.test, bia@postern.test, suporte@postern.test\n\
             self@postern.test    self@postern.test, copy@postern.test\n\
             @catch.test          catchall@postern.test\n\
             loop1@postern.test   loop2@postern.test\n\
             loop2@postern.test   loop1@postern.test\n",
            |_| {},
        );
        assert_eq!(
            texts(r.recipient(&addr("info@vdomain.test")).unwrap()),
            ["suporte@postern.test", "ana@postern.test"]
        );
        assert_eq!(
            texts(r.recipient(&addr("team@postern.test")).unwrap()),
            ["suporte@postern.test", "ana@postern.test", "bia@postern.test"]
        );
        assert_eq!(
            texts(r.recipient(&addr("self@postern.test")).unwrap()),
            ["self@postern.test", "copy@postern.test"]
        );
        assert_eq!(texts(r.recipient(&addr("x@catch.test")).unwrap()), ["catchall@postern.test"]);
        assert_eq!(
            texts(r.recipient(&addr("nobody@postern.test")).unwrap()),
            ["nobody@postern.test"]
        );
        assert!(r.is_virtual_alias_domain("VDOMAIN.test.").unwrap());
        assert!(!r.is_virtual_alias_domain("postern.test").unwrap());
        assert!(r.has_virtual_alias(&addr("info@vdomain.test")).unwrap());
        assert!(!r.has_virtual_alias(&addr("nope@vdomain.test")).unwrap());
        let e = r.recipient(&addr("loop1@postern.test")).unwrap_err().to_string();
        assert!(e.contains("unreasonable virtual_alias_maps map nesting"), "{e}");
    }

    #[test]
    fn expansion_limit() {
        let d = tempfile::tempdir().unwrap();
        let many: Vec<String> = (0..20).map(|i| format!("u{i}@postern.test")).collect();
        let r = rewriter(d.path(), "", &format!("big@postern.test {}\n", many.join(", ")), |p| {
            p.virtual_alias_expansion_limit = 10;
        });
        let e = r.recipient(&addr("big@postern.test")).unwrap_err().to_string();
        assert!(e.contains("virtual_alias_expansion_limit = 10"), "{e}");
        let r = rewriter(d.path(), "", &format!("big@postern.test {}\n", many.join(", ")), |_| {});
        assert_eq!(r.recipient(&addr("big@postern.test")).unwrap().len(), 20);
    }

    #[test]
    fn bad_table_type_in_virtual_alias_domains() {
        let e = Rewriter::new(RewriteParams {
            virtual_alias_domains: vec!["regexp:/etc/x".into()],
            ..RewriteParams::default()
        })
        .unwrap_err();
        assert!(e.contains("virtual_alias_domains") && e.contains("regexp:"), "{e}");
    }
}
