//! Domain lists such as `relay_domains`: names that match their
//! subdomains too, and tables whose keys are such names. smtpd asks
//! whether it may relay to a domain; qmgr, which transport takes it.

/// `relay_domains`: names (each matching its subdomains too, Postfix's
/// `parent_domain_matches_subdomains` default for relay_domains) and
/// tables whose keys are such names.
#[derive(Debug, Default)]
pub struct DomainList {
    names: Vec<String>,
    tables: Vec<crate::maps::Maps>,
}

impl DomainList {
    /// The list of a parameter (`param` names it in errors): names, and
    /// `type:table` or path items as tables, relative to `dir`.
    pub fn new(param: &str, items: &[String], dir: &std::path::Path) -> Result<DomainList, String> {
        let mut l = DomainList::default();
        for it in items {
            if it.contains('/') || it.contains(':') {
                let file = crate::maps::map_file(it, dir)
                    .map_err(|why| format!("parameter \"{param}\": {why}"))?;
                l.tables.push(crate::maps::Maps::new(vec![file]));
            } else {
                let n = it.trim().trim_end_matches('.').to_ascii_lowercase();
                if !n.is_empty() {
                    l.names.push(n);
                }
            }
        }
        Ok(l)
    }

    /// Whether `domain` or one of its parents is listed; `[address]`
    /// literals never are.
    pub fn matches(&self, domain: &str) -> Result<bool, crate::Error> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() || d.starts_with('[') {
            return Ok(false);
        }
        if self
            .names
            .iter()
            .any(|n| d == *n || d.strip_suffix(n.as_str()).is_some_and(|p| p.ends_with('.')))
        {
            return Ok(true);
        }
        for t in &self.tables {
            let mut rest = d.as_str();
            loop {
                if t.get(rest)?.is_some() || t.get(&format!(".{rest}"))?.is_some() {
                    return Ok(true);
                }
                match rest.split_once('.') {
                    Some((_, parent)) if !parent.is_empty() => rest = parent,
                    _ => break,
                }
            }
        }
        Ok(false)
    }
}
