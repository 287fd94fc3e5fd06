//! System users' passwords through PAM (`pam_authenticate`, then
//! `pam_acct_mgmt` for expired or locked accounts), with the service name
//! `authd_pam_service` (`postern`: `/etc/pam.d/postern`, or
//! `/etc/pam.d/other` without it, which on Debian includes `common-auth`
//! and `common-account`, i.e. pam_unix and /etc/shadow, yescrypt
//! included).
//!
//! The conversation answers the password prompt (`PAM_PROMPT_ECHO_OFF`)
//! with the client's password and refuses every other prompt; messages
//! PAM sends (`PAM_ERROR_MSG`, `PAM_TEXT_INFO`) are kept for the log.
//! `PAM_RHOST` is the client's address, so pam_unix and pam_faillock log
//! and count it.
//!
//! Blocking: a PAM transaction runs on the calling thread (authd calls
//! this from `spawn_blocking`), and pam_unix sleeps about 2 s after a
//! wrong password (its own failure delay, unless `nodelay`).
//!
//! Privileges: as root, pam_unix reads /etc/shadow itself. As another
//! user (a development instance), it asks the setgid helper
//! `unix_chkpwd`, which checks only the invoking user's own password:
//! every other user fails. Dev instances use the passwd-file instead.
//!
//! Bindings: the `nonstick` crate (safe wrappers over libpam, no bindgen;
//! `pam-client` and `pam` need libclang at build time). Severities: none;
//! every outcome is returned.

use nonstick::items::ItemsMut as _;
use nonstick::{
    AuthnFlags, ConversationAdapter, ErrorCode, PamShared as _, Transaction, TransactionBuilder,
};
use std::ffi::{OsStr, OsString};
use std::sync::Mutex;

/// What PAM said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PamResult {
    /// Password right and account usable.
    Ok,
    /// Wrong password, unknown user, account expired or locked: the PAM
    /// error text, and any message PAM sent.
    Fail(String),
    /// PAM could not decide (its configuration or a module is broken).
    TempFail(String),
}

struct Answer {
    password: String,
    messages: Mutex<Vec<String>>,
}

impl ConversationAdapter for Answer {
    fn prompt(&self, _request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        // The user name is set before pam_authenticate; a module that asks
        // for anything else in clear (an OTP, a question) cannot be answered.
        Err(ErrorCode::ConversationError)
    }

    fn masked_prompt(&self, _request: impl AsRef<OsStr>) -> nonstick::Result<OsString> {
        Ok(OsString::from(&self.password))
    }

    fn error_msg(&self, message: impl AsRef<OsStr>) {
        self.keep(message.as_ref());
    }

    fn info_msg(&self, message: impl AsRef<OsStr>) {
        self.keep(message.as_ref());
    }
}

impl Answer {
    fn keep(&self, message: &OsStr) {
        let mut m = self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A module could send many; a few are enough for the log.
        if m.len() < 4 {
            m.push(message.to_string_lossy().chars().take(200).collect());
        }
    }
}

/// Checks `user`'s `password` with PAM service `service`, the client at
/// `rhost`. Blocks.
pub(crate) fn authenticate(service: &str, user: &str, password: &str, rhost: &str) -> PamResult {
    let answer = Answer { password: password.to_owned(), messages: Mutex::new(Vec::new()) };
    let mut txn = match TransactionBuilder::new_with_service(service)
        .username(user)
        .build(answer.into_conversation())
    {
        Ok(txn) => txn,
        Err(e) => return PamResult::TempFail(format!("pam_start: {e}")),
    };
    if let Err(e) = txn.items_mut().set_remote_host(Some(OsStr::new(rhost))) {
        return PamResult::TempFail(format!("pam_set_item(PAM_RHOST): {e}"));
    }
    let result =
        txn.authenticate(AuthnFlags::empty()).map_err(|e| ("pam_authenticate", e)).and_then(|()| {
            txn.account_management(AuthnFlags::empty()).map_err(|e| ("pam_acct_mgmt", e))
        });
    match result {
        Ok(()) => PamResult::Ok,
        Err((call, e)) => {
            let text = format!("{call}: {e}");
            match e {
                // PAM's configuration or a module is broken: not the
                // user's fault, and retrying later may work.
                ErrorCode::OpenError
                | ErrorCode::SymbolError
                | ErrorCode::ServiceError
                | ErrorCode::SystemError
                | ErrorCode::BufferError
                | ErrorCode::TryAgain
                | ErrorCode::AuthInfoUnavailable => PamResult::TempFail(text),
                _ => PamResult::Fail(text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user that does not exist fails through the real PAM stack (as
    /// root through pam_unix; otherwise through unix_chkpwd, which also
    /// refuses); it never succeeds.
    #[test]
    fn unknown_user_fails() {
        let r = authenticate("postern", "no-such-user-postern-pam", "x", "192.0.2.1");
        assert!(matches!(r, PamResult::Fail(_) | PamResult::TempFail(_)), "{r:?}");
    }
}
