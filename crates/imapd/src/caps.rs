//! What imapd announces: the capability lists before and after login
//! (one place, so the greeting, CAPABILITY and the login's OK agree with
//! what the mail process implements), and the fixed texts both services
//! answer with.

/// Before login. `AUTH=PLAIN` only where a password may be sent, else
/// `LOGINDISABLED` (RFC 9051 §6.2.3); STARTTLS while it is possible.
pub(crate) fn before_login(starttls: bool, may_login: bool) -> String {
    let mut s = String::from("IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+");
    if starttls {
        s.push_str(" STARTTLS");
    }
    s.push_str(if may_login { " AUTH=PLAIN" } else { " LOGINDISABLED" });
    s
}

/// After login: everything the mail service implements.
pub(crate) fn after_login() -> &'static str {
    AFTER_LOGIN
}

const AFTER_LOGIN: &str = "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+ NAMESPACE UNSELECT \
UIDPLUS MOVE CHILDREN SPECIAL-USE BINARY SORT THREAD=REFERENCES THREAD=ORDEREDSUBJECT CONDSTORE QRESYNC ESEARCH SEARCHRES UTF8=ACCEPT LIST-EXTENDED LIST-STATUS MULTIAPPEND";

/// The ID response (RFC 2971): the name only, no version to fingerprint.
pub(crate) const ID_RESPONSE: &[u8] = b"* ID (\"name\" \"Postern\")\r\n";

/// LOGIN / AUTHENTICATE on a plain connection from the network.
pub(crate) const PRIVACY_REQUIRED: &str =
    "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";
