//! Postfix's SMTP access restrictions: `smtpd_client_restrictions`,
//! `smtpd_helo_restrictions`, `smtpd_sender_restrictions`,
//! `smtpd_relay_restrictions` and `smtpd_recipient_restrictions`, parsed
//! once at start-up into typed lists ([`Restrictions::from_settings`]) and
//! evaluated per recipient ([`crate::policy::Policy::check_rcpt`]) with
//! `smtpd_delay_reject = yes` semantics: every list is evaluated at RCPT
//! TO, in the order client, helo, sender, relay, recipient, as Postfix
//! does.
//!
//! Within a list the first restriction that decides wins: a permit ends
//! that list (the next list is still evaluated), a reject or defer ends
//! the whole check, and the end of a list is a permit of that list.
//!
//! Unknown restriction names are configuration errors at start-up
//! naming the parameter (Postfix: "unknown smtpd restriction"); the
//! restrictions that need DNS (`reject_unknown_*`, `reject_rbl_client`,
//! ...) or a policy service are refused the same way, with "not
//! supported". Reply codes and texts are Postfix's.

use std::net::IpAddr;
use std::path::Path;

use mail_config::settings;
use mail_lookup::maps::{self, Maps};
use mail_types::{Address, EnhancedStatus};
use smtp_proto::Reply;

/// What the restrictions look at: one RCPT TO in its session. The
/// coordinator fills `sasl_username` and `tls` once AUTH and STARTTLS
/// exist; until then they are `None` and `false`.
#[derive(Debug, Clone)]
pub(crate) struct CheckContext {
    /// The client address (IPv4-mapped addresses unmapped).
    pub(crate) client_addr: IpAddr,
    /// `localhost` or `unknown` (or a reverse DNS name later).
    pub(crate) client_name: String,
    /// The HELO/EHLO argument, if one was given.
    pub(crate) helo: Option<String>,
    /// The SASL login name, when the client authenticated.
    pub(crate) sasl_username: Option<String>,
    /// The session is encrypted (STARTTLS or implicit TLS).
    pub(crate) tls: bool,
    /// The MAIL FROM address as given; `None` for the null sender `<>`.
    pub(crate) sender: Option<Address>,
    /// The RCPT TO address as given.
    pub(crate) recipient: Address,
}

impl CheckContext {
    /// `name[addr]`, as Postfix names the client in replies and logs.
    pub(crate) fn client(&self) -> String {
        format!("{}[{}]", self.client_name, self.client_addr)
    }
}

/// Which list a restriction belongs to: decides the reply's wording
/// (`Client host rejected`, `Helo command rejected`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Client,
    Helo,
    Sender,
    Relay,
    Recipient,
}

impl Stage {
    fn param(self) -> &'static str {
        match self {
            Stage::Client => "smtpd_client_restrictions",
            Stage::Helo => "smtpd_helo_restrictions",
            Stage::Sender => "smtpd_sender_restrictions",
            Stage::Relay => "smtpd_relay_restrictions",
            Stage::Recipient => "smtpd_recipient_restrictions",
        }
    }
}

/// One restriction, parsed.
#[derive(Debug)]
pub(crate) enum Restriction {
    Permit,
    Reject,
    Defer,
    PermitMynetworks,
    PermitSaslAuthenticated,
    PermitAuthDestination,
    RejectUnauthDestination,
    DeferUnauthDestination,
    RejectUnlistedRecipient,
    RejectUnlistedSender,
    RejectNonFqdnHeloHostname,
    RejectInvalidHeloHostname,
    RejectNonFqdnSender,
    RejectNonFqdnRecipient,
    /// `reject_sender_login_mismatch` is both; the other two one each.
    RejectSenderLoginMismatch {
        authenticated: bool,
        unauthenticated: bool,
    },
    RejectPlaintextSession,
    CheckClientAccess(Maps),
    CheckHeloAccess(Maps),
    CheckSenderAccess(Maps),
    CheckRecipientAccess(Maps),
}

/// Postfix restrictions Postern knows by name but does not implement.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("reject_unknown_client_hostname", "it needs DNS lookups"),
    ("reject_unknown_reverse_client_hostname", "it needs DNS lookups"),
    ("reject_unknown_helo_hostname", "it needs DNS lookups"),
    ("reject_unknown_sender_domain", "it needs DNS lookups"),
    ("reject_unknown_recipient_domain", "it needs DNS lookups"),
    ("reject_unverified_sender", "it needs address verification"),
    ("reject_unverified_recipient", "it needs address verification"),
    ("reject_rbl_client", "it needs DNS lookups"),
    ("reject_rhsbl_client", "it needs DNS lookups"),
    ("reject_rhsbl_sender", "it needs DNS lookups"),
    ("reject_rhsbl_helo", "it needs DNS lookups"),
    ("reject_rhsbl_recipient", "it needs DNS lookups"),
    ("permit_dnswl_client", "it needs DNS lookups"),
    ("permit_mx_backup", "it needs DNS lookups"),
    ("check_policy_service", "there is no policy service client"),
    ("permit_tls_clients", "client certificates are not checked"),
    ("permit_tls_all_clientcerts", "client certificates are not checked"),
    ("reject_unauth_pipelining", "pipelining is always allowed"),
    ("reject_multi_recipient_bounce", "it is not implemented"),
];

/// The five lists, ready to evaluate.
#[derive(Debug)]
pub(crate) struct Restrictions {
    pub(crate) client: Vec<Restriction>,
    pub(crate) helo: Vec<Restriction>,
    pub(crate) sender: Vec<Restriction>,
    pub(crate) relay: Vec<Restriction>,
    pub(crate) recipient: Vec<Restriction>,
}

impl Restrictions {
    /// Parses the lists of `s`. `Err` is the configuration error, naming
    /// the parameter and the restriction.
    pub(crate) fn from_settings(s: &settings::Smtpd) -> Result<Restrictions, String> {
        let dir = s.config_directory.as_path();
        let r = Restrictions {
            client: parse(Stage::Client, &s.smtpd_client_restrictions, dir)?,
            helo: parse(Stage::Helo, &s.smtpd_helo_restrictions, dir)?,
            sender: parse(Stage::Sender, &s.smtpd_sender_restrictions, dir)?,
            relay: parse(Stage::Relay, &s.smtpd_relay_restrictions, dir)?,
            recipient: parse(Stage::Recipient, &s.smtpd_recipient_restrictions, dir)?,
        };
        // Postfix refuses to start without relay control: an open relay
        // is never the result of an oversight.
        let guards = |l: &[Restriction]| {
            l.iter().any(|x| {
                matches!(
                    x,
                    Restriction::RejectUnauthDestination
                        | Restriction::DeferUnauthDestination
                        | Restriction::Reject
                        | Restriction::Defer
                )
            })
        };
        if !guards(&r.relay) && !guards(&r.recipient) {
            return Err("in parameters smtpd_relay_restrictions or smtpd_recipient_restrictions, \
                 specify at least one working instance of: reject_unauth_destination, \
                 defer_unauth_destination, reject or defer"
                .to_owned());
        }
        Ok(r)
    }

    /// The list of `stage`.
    pub(crate) fn list(&self, stage: Stage) -> &[Restriction] {
        match stage {
            Stage::Client => &self.client,
            Stage::Helo => &self.helo,
            Stage::Sender => &self.sender,
            Stage::Relay => &self.relay,
            Stage::Recipient => &self.recipient,
        }
    }
}

/// Parses one list (already split on commas and white space).
pub(crate) fn parse(
    stage: Stage,
    items: &[String],
    dir: &Path,
) -> Result<Vec<Restriction>, String> {
    let param = stage.param();
    let mut out = Vec::with_capacity(items.len());
    let mut it = items.iter();
    while let Some(name) = it.next() {
        let lower = name.to_ascii_lowercase();
        let mut table = |what: &str| -> Result<Maps, String> {
            let spec = it.next().ok_or_else(|| {
                format!("parameter \"{param}\": {what} needs a type:table argument")
            })?;
            let file = maps::map_file(spec, dir)
                .map_err(|why| format!("parameter \"{param}\": {what}: {why}"))?;
            Ok(Maps::new(vec![file]))
        };
        let r = match lower.as_str() {
            "permit" => Restriction::Permit,
            "reject" => Restriction::Reject,
            "defer" => Restriction::Defer,
            "permit_mynetworks" => Restriction::PermitMynetworks,
            "permit_sasl_authenticated" => Restriction::PermitSaslAuthenticated,
            "permit_auth_destination" => Restriction::PermitAuthDestination,
            "reject_unauth_destination" => Restriction::RejectUnauthDestination,
            "defer_unauth_destination" => Restriction::DeferUnauthDestination,
            "reject_unlisted_recipient" | "check_recipient_maps" => {
                Restriction::RejectUnlistedRecipient
            }
            "reject_unlisted_sender" => Restriction::RejectUnlistedSender,
            "reject_non_fqdn_helo_hostname" | "reject_non_fqdn_hostname" => {
                Restriction::RejectNonFqdnHeloHostname
            }
            "reject_invalid_helo_hostname" | "reject_invalid_hostname" => {
                Restriction::RejectInvalidHeloHostname
            }
            "reject_non_fqdn_sender" => Restriction::RejectNonFqdnSender,
            "reject_non_fqdn_recipient" => Restriction::RejectNonFqdnRecipient,
            "reject_sender_login_mismatch" => Restriction::RejectSenderLoginMismatch {
                authenticated: true,
                unauthenticated: true,
            },
            "reject_authenticated_sender_login_mismatch" => {
                Restriction::RejectSenderLoginMismatch {
                    authenticated: true,
                    unauthenticated: false,
                }
            }
            "reject_unauthenticated_sender_login_mismatch" => {
                Restriction::RejectSenderLoginMismatch {
                    authenticated: false,
                    unauthenticated: true,
                }
            }
            "reject_plaintext_session" => Restriction::RejectPlaintextSession,
            "check_client_access" => Restriction::CheckClientAccess(table(&lower)?),
            "check_helo_access" => Restriction::CheckHeloAccess(table(&lower)?),
            "check_sender_access" => Restriction::CheckSenderAccess(table(&lower)?),
            "check_recipient_access" => Restriction::CheckRecipientAccess(table(&lower)?),
            other => {
                if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == other) {
                    return Err(format!(
                        "parameter \"{param}\": restriction \"{name}\" is not supported by \
                         Postern ({why}); remove it"
                    ));
                }
                return Err(format!(
                    "parameter \"{param}\": unknown smtpd restriction: \"{name}\""
                ));
            }
        };
        out.push(r);
    }
    Ok(out)
}

/// What one restriction or list decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Ends the list with a permit.
    Permit,
    /// Goes on with the next restriction.
    Dunno,
    /// Ends the check with this reply (4xx or 5xx).
    Reject(Reply),
}

fn status(code: u16, dsn: (u8, u16, u16), text: String) -> Reply {
    Reply::with_status(code, EnhancedStatus(dsn.0, dsn.1, dsn.2), text)
}

/// `CODE D.S.N <name>: Class rejected: text`, Postfix's shape for
/// restriction replies.
pub(crate) fn rejected(
    code: u16,
    dsn: (u8, u16, u16),
    name: &str,
    class: &str,
    text: &str,
) -> Reply {
    status(code, dsn, format!("<{name}>: {class} rejected: {text}"))
}

/// The `<name>` and `Class` of a reply at `stage` for `ctx`.
pub(crate) fn subject(stage: Stage, ctx: &CheckContext) -> (String, &'static str) {
    match stage {
        Stage::Client => (ctx.client(), "Client host"),
        Stage::Helo => (ctx.helo.clone().unwrap_or_default(), "Helo command"),
        Stage::Sender => (addr_text(ctx.sender.as_ref()), "Sender address"),
        Stage::Relay | Stage::Recipient => (ctx.recipient.to_string(), "Recipient address"),
    }
}

pub(crate) fn addr_text(a: Option<&Address>) -> String {
    a.map(ToString::to_string).unwrap_or_default()
}

/// An access(5) table's value as a decision, for a reply about `name`
/// in `class`. Postfix's actions: `OK`/`PERMIT`, all-numerical (OK),
/// `DUNNO`, `REJECT [text]`, `DEFER [text]`, `4NN text`, `5NN text`,
/// `WARN text`. The others (restriction names, `HOLD`, `DISCARD`,
/// `FILTER`, `REDIRECT`, ...) are not supported: the client gets
/// Postfix's reply to a table it cannot use, 451 4.3.5, and the log says
/// why.
pub(crate) fn access_action(value: &str, name: &str, class: &str, table: &Maps) -> Decision {
    let value = value.trim();
    let (word, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((w, r)) => (w, r.trim()),
        None => (value, ""),
    };
    let text =
        |default: &'static str| if rest.is_empty() { default.to_owned() } else { rest.to_owned() };
    match word.to_ascii_uppercase().as_str() {
        "OK" | "PERMIT" => return Decision::Permit,
        "DUNNO" => return Decision::Dunno,
        "REJECT" => {
            let (dsn, text) = dsn_of(&text("Access denied"), 5);
            return Decision::Reject(rejected(554, dsn, name, class, &text));
        }
        "DEFER" => {
            let (dsn, text) = dsn_of(&text("Access denied"), 4);
            return Decision::Reject(rejected(450, dsn, name, class, &text));
        }
        "WARN" => {
            tracing::warn!("<{name}>: {class} triggers WARN action: {rest}");
            return Decision::Dunno;
        }
        _ => {}
    }
    if word.len() == 3
        && word.bytes().all(|b| b.is_ascii_digit())
        && matches!(word.as_bytes()[0], b'4' | b'5')
        && let Ok(code) = word.parse::<u16>()
    {
        let class_digit = (code / 100) as u8;
        let (dsn, text) = dsn_of(&text("Access denied"), class_digit);
        return Decision::Reject(rejected(code, dsn, name, class, &text));
    }
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        return Decision::Permit;
    }
    let files: Vec<String> = table.paths().map(|p| p.display().to_string()).collect();
    tracing::warn!(
        "access table {}: unsupported action \"{value}\" for <{name}>; the client gets 451 4.3.5",
        files.join(", ")
    );
    Decision::Reject(status(451, (4, 3, 5), "Server configuration error".to_owned()))
}

/// A leading `X.Y.Z` enhanced status in `text` of the reply's class, or
/// `X.7.1`, as Postfix takes it from an access table's text.
fn dsn_of(text: &str, class: u8) -> ((u8, u16, u16), String) {
    let (first, rest) = match text.split_once(' ') {
        Some((f, r)) => (f, r.trim_start()),
        None => (text, ""),
    };
    let parts: Vec<&str> = first.split('.').collect();
    if let [a, b, c] = parts[..]
        && let (Ok(a), Ok(b), Ok(c)) = (a.parse::<u8>(), b.parse::<u16>(), c.parse::<u16>())
        && a == class
        && b < 1000
        && c < 1000
    {
        let rest = if rest.is_empty() { "Access denied" } else { rest };
        return ((a, b, c), rest.to_owned());
    }
    ((class, 7, 1), text.to_owned())
}

/// RFC 1123 host name syntax with at least two labels (the test of
/// `reject_non_fqdn_helo_hostname`), or an address literal.
pub(crate) fn is_fqdn_or_literal(name: &str) -> bool {
    if is_address_literal(name) {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    is_valid_hostname(name) && name.contains('.')
}

/// Postfix's `reject_invalid_helo_hostname` test: a syntactically valid
/// host name (one label is enough) or address literal.
pub(crate) fn is_valid_helo(name: &str) -> bool {
    if is_address_literal(name) {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    is_valid_hostname(name)
}

fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // An all-numeric name is an address written without brackets.
        && !name.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

fn is_address_literal(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// Whether an address has a fully-qualified domain (for
/// `reject_non_fqdn_sender` and `_recipient`): a domain with a dot, or an
/// address literal.
pub(crate) fn has_fqdn(a: &Address) -> bool {
    match a.domain() {
        None => false,
        Some(d) => is_fqdn_or_literal(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &str) -> Vec<String> {
        s.split([',', ' ']).filter(|x| !x.is_empty()).map(str::to_owned).collect()
    }

    #[test]
    fn parse_names_tables_and_errors() {
        let dir = Path::new("/etc/postern");
        let l = parse(
            Stage::Recipient,
            &items("permit_mynetworks, check_recipient_access hash:/etc/postern/access, REJECT_UNAUTH_DESTINATION"),
            dir,
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert!(matches!(l[1], Restriction::CheckRecipientAccess(_)));
        let e = parse(Stage::Sender, &items("permit, frobnicate"), dir).unwrap_err();
        assert_eq!(
            e,
            "parameter \"smtpd_sender_restrictions\": unknown smtpd restriction: \"frobnicate\""
        );
        let e = parse(Stage::Client, &items("reject_unknown_client_hostname"), dir).unwrap_err();
        assert!(e.contains("not supported") && e.contains("DNS"), "{e}");
        let e = parse(Stage::Helo, &items("check_helo_access"), dir).unwrap_err();
        assert!(e.contains("needs a type:table"), "{e}");
        let e = parse(Stage::Helo, &items("check_helo_access regexp:/x"), dir).unwrap_err();
        assert!(e.contains("smtpd_helo_restrictions") && e.contains("regexp:"), "{e}");
    }

    #[test]
    fn access_actions() {
        let t = Maps::default();
        let a = |v: &str| access_action(v, "a@b", "Sender address", &t);
        assert_eq!(a("OK"), Decision::Permit);
        assert_eq!(a("permit"), Decision::Permit);
        assert_eq!(a("12"), Decision::Permit);
        assert_eq!(a("DUNNO"), Decision::Dunno);
        assert_eq!(a("WARN be careful"), Decision::Dunno);
        let r = |v: &str| match a(v) {
            Decision::Reject(r) => r.to_string(),
            d => panic!("{d:?}"),
        };
        assert_eq!(r("REJECT"), "554 5.7.1 <a@b>: Sender address rejected: Access denied");
        assert_eq!(r("REJECT go away"), "554 5.7.1 <a@b>: Sender address rejected: go away");
        assert_eq!(r("DEFER"), "450 4.7.1 <a@b>: Sender address rejected: Access denied");
        assert_eq!(
            r("550 no such thing"),
            "550 5.7.1 <a@b>: Sender address rejected: no such thing"
        );
        assert_eq!(
            r("551 5.1.6 moved away"),
            "551 5.1.6 <a@b>: Sender address rejected: moved away"
        );
        // A DSN of the wrong class is text.
        assert_eq!(r("451 5.1.1 x"), "451 4.7.1 <a@b>: Sender address rejected: 5.1.1 x");
        assert_eq!(r("HOLD"), "451 4.3.5 Server configuration error");
        assert_eq!(r("permit_mynetworks"), "451 4.3.5 Server configuration error");
    }

    #[test]
    fn helo_name_tests() {
        assert!(is_fqdn_or_literal("mail.example.com"));
        assert!(is_fqdn_or_literal("mail.example.com."));
        assert!(is_fqdn_or_literal("[192.0.2.1]"));
        assert!(is_fqdn_or_literal("[IPv6:2001:db8::1]"));
        assert!(!is_fqdn_or_literal("localhost"));
        assert!(!is_fqdn_or_literal("1.2.3.4"));
        assert!(is_valid_helo("localhost"));
        assert!(!is_valid_helo("bad_host!"));
        assert!(!is_valid_helo("a..b"));
        assert!(!is_valid_helo("[999.1.1.1]"));
        assert!(!is_valid_helo("-x.example"));
    }
}
