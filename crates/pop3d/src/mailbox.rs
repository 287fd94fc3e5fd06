//! The POP3 view of a Maildir: the UIDL values (the message list the
//! session numbers is mail-maildir's index, in UID order; where the
//! Maildir is, mail-session's `maildir_location`).

/// The UIDL value of a message: UID then UIDVALIDITY, each as eight
/// upper-case hex digits (Dovecot's default `%08Xu%08Xv`), so a client
/// that moves from Dovecot, or uses IMAP beside POP3, sees the same ids.
pub(crate) fn uidl(uid: u32, uid_validity: u32) -> String {
    format!("{uid:08X}{uid_validity:08X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidl_is_dovecots_default() {
        assert_eq!(uidl(1, 0x5f3e_1a2b), "000000015F3E1A2B");
        assert_eq!(uidl(0xffff_ffff, 1), "FFFFFFFF00000001");
    }
}
