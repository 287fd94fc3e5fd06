//! authd's connections and checks: reads `mail_ipc::auth` requests, checks
//! each password (passwd-file or PAM) on a blocking thread, applies the
//! failure delays of [`crate::penalty`], logs the outcome and answers.
//!
//! Bounds: a frame of at most `mail_ipc::auth::MAX_FRAME` bytes, finished
//! within [`FRAME_TIMEOUT`] once started; at most [`MAX_CONNECTIONS`]
//! connections; at most [`MAX_PER_CLIENT`] checks in flight per client
//! address (more get `TempFail`); at most [`MAX_VERIFY`] password checks
//! running at once (hashing is real CPU work) and [`MAX_PENDING`] waiting
//! for one (more get `TempFail`, "authd overloaded"). Severities: a broken
//! connection is a warning and costs only that connection; a passwd-file
//! or PAM problem is a warning and a `TempFail` to the asking daemon.

use crate::pam::{self, PamResult};
use crate::penalty::{Outcome, Penalty, address_key};
use mail_auth::UserDb;
use mail_daemon::{Connection, Service, StopWatch};
use mail_ipc::auth::{AuthReply, AuthRequest, AuthUser, MAX_FRAME, MAX_PASSWORD, MAX_USER};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Semaphore, watch};

/// How long a started frame, or the write of a reply, may take.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (each smtpd, pop3d and imapd process holds
/// a few).
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// Checks in flight per client address (IPv6: per /64).
pub(crate) const MAX_PER_CLIENT: u32 = 4;
/// Password checks running at once.
pub(crate) const MAX_VERIFY: usize = 4;
/// Checks waiting for one of the [`MAX_VERIFY`] slots.
pub(crate) const MAX_PENDING: usize = 256;
/// Keys per failure table (client addresses; user names).
pub(crate) const MAX_KEYS: usize = 16_384;

/// Where users come from.
#[derive(Debug)]
pub(crate) enum Users {
    /// Virtual users with stored hashes (`passwd_file`).
    PasswdFile(UserDb),
    /// System users: PAM for the password, the passwd database for who.
    System {
        /// `authd_pam_service`.
        pam_service: String,
        /// `authd_first_valid_uid`.
        first_valid_uid: u32,
    },
}

impl Users {
    fn label(&self) -> &'static str {
        match self {
            Users::PasswdFile(_) => "passwd-file",
            Users::System { .. } => "pam",
        }
    }
}

/// What one check found, with the reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    Ok(AuthUser),
    Fail(String),
    TempFail(String),
}

/// A stored hash of nothing anyone knows, checked for unknown users so an
/// unknown name costs the same hashing as a known one (yescrypt, the
/// costliest scheme we verify; made with `mkpasswd -m yescrypt`).
const DUMMY_HASH: &str =
    "$y$j9T$RtW.LRVeIGuG3KQGwAdeF.$7EWWHtCckq77rApr/Tz4QpXXcfHudQab/dQOkMS.y.2";

/// Checks `req` against `users`. Blocks (hashing, PAM).
pub(crate) fn check(users: &Users, req: &AuthRequest) -> Checked {
    if let Err(why) = well_formed(req) {
        return Checked::Fail(why.to_owned());
    }
    if req.password.is_empty() {
        // PAM's nullok would let an account without a password in.
        return Checked::Fail("empty password".to_owned());
    }
    match users {
        Users::PasswdFile(db) => check_passwd_file(db, req),
        Users::System { pam_service, first_valid_uid } => {
            check_system(pam_service, *first_valid_uid, req)
        }
    }
}

fn well_formed(req: &AuthRequest) -> Result<(), &'static str> {
    if req.user.is_empty() || req.user.len() > MAX_USER || req.user.chars().any(char::is_control) {
        return Err("malformed user name");
    }
    if req.password.len() > MAX_PASSWORD || req.password.contains('\0') {
        return Err("malformed password");
    }
    Ok(())
}

fn check_passwd_file(db: &UserDb, req: &AuthRequest) -> Checked {
    let user = match db.lookup(&req.user) {
        Ok(user) => user,
        Err(e) => return Checked::TempFail(e.to_string()),
    };
    let Some(user) = user else {
        let _ = mail_auth::verify_password(DUMMY_HASH, &req.password);
        return Checked::Fail("unknown user".to_owned());
    };
    let Some(hash) = user.password_hash.as_deref() else {
        return Checked::Fail("no password set".to_owned());
    };
    if !mail_auth::verify_password(hash, &req.password) {
        return Checked::Fail("password mismatch".to_owned());
    }
    Checked::Ok(auth_user(user))
}

/// What a client learns of a user whose password was right.
fn auth_user(user: mail_auth::User) -> AuthUser {
    AuthUser { user: user.name, uid: user.uid, gid: user.gid, home: user.home, mail: None }
}

fn check_system(pam_service: &str, first_valid_uid: u32, req: &AuthRequest) -> Checked {
    // The passwd database spells the name (clients often capitalise it);
    // an unknown name still goes through PAM, so it costs the same.
    let found = match UserDb::System.lookup(&req.user) {
        Ok(found) => found,
        Err(e) => return Checked::TempFail(e.to_string()),
    };
    let name = found.as_ref().map_or(req.user.as_str(), |u| u.name.as_str());
    match pam::authenticate(pam_service, name, &req.password, &req.client.to_string()) {
        PamResult::Ok => {}
        PamResult::Fail(text) => return Checked::Fail(text),
        PamResult::TempFail(text) => return Checked::TempFail(text),
    }
    let Some(user) = found else {
        return Checked::Fail("PAM accepted a user the passwd database does not know".to_owned());
    };
    if user.uid < first_valid_uid {
        return Checked::Fail(format!(
            "uid {} is below authd_first_valid_uid {first_valid_uid}",
            user.uid
        ));
    }
    Checked::Ok(auth_user(user))
}

/// The log line's `user=<...>`: the name as sent, with anything odd escaped.
fn shown_user(user: &str) -> String {
    user.chars().take(MAX_USER).flat_map(char::escape_default).collect()
}

/// The log line of one check (after `warning: ` for failures).
pub(crate) fn log_line(req: &AuthRequest, checked: &Checked, db: &str, delay: Duration) -> String {
    let who = format!(
        "user=<{}>, rhost=[{}], tls={}",
        shown_user(&req.user),
        req.client,
        if req.tls { "yes" } else { "no" }
    );
    let delay =
        if delay.is_zero() { String::new() } else { format!(", delay={}s", delay.as_secs()) };
    match checked {
        Checked::Ok(u) => format!(
            "{} authentication succeeded: {who}, uid={}, db={db}{delay}",
            req.service, u.uid
        ),
        Checked::Fail(why) => {
            format!("{} authentication failed: {who}, db={db}, reason={why}{delay}", req.service)
        }
        Checked::TempFail(why) => {
            format!(
                "{} authentication temporarily failed: {who}, db={db}, reason={why}{delay}",
                req.service
            )
        }
    }
}

/// The daemon's shared state.
#[derive(Debug)]
pub(crate) struct Authd {
    users: Arc<Users>,
    penalty: Mutex<Penalty>,
    in_flight: Mutex<HashMap<IpAddr, u32>>,
    verify: Arc<Semaphore>,
    pending: AtomicUsize,
    /// Set when a stop was asked: connections end after the request in hand.
    closing: watch::Sender<bool>,
}

/// A slot of a client's in-flight checks, given back on drop.
struct Slot<'a> {
    authd: &'a Authd,
    key: IpAddr,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut m = self.authd.lock_in_flight();
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Authd {
    pub(crate) fn new(users: Users) -> Authd {
        Authd {
            users: Arc::new(users),
            penalty: Mutex::new(Penalty::new(MAX_KEYS)),
            in_flight: Mutex::new(HashMap::new()),
            verify: Arc::new(Semaphore::new(MAX_VERIFY)),
            pending: AtomicUsize::new(0),
            closing: watch::Sender::new(false),
        }
    }

    // Neither table has an invariant a panic elsewhere could break halfway.
    fn lock_penalty(&self) -> MutexGuard<'_, Penalty> {
        self.penalty.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_in_flight(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, client: IpAddr) -> Option<Slot<'_>> {
        let key = address_key(client);
        let mut m = self.lock_in_flight();
        let n = m.entry(key).or_insert(0);
        if *n >= MAX_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(Slot { authd: self, key })
    }

    /// Checks one request and returns the reply, after its delay.
    pub(crate) async fn answer(&self, req: AuthRequest) -> AuthReply {
        let db = self.users.label();
        let Some(_slot) = self.slot(req.client) else {
            let checked = Checked::TempFail(format!(
                "more than {MAX_PER_CLIENT} checks from this client at once"
            ));
            return self.finish(&req, checked, db).await;
        };
        let _pending = Pending(&self.pending);
        if self.pending.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING {
            let checked =
                Checked::TempFail(format!("authd overloaded ({MAX_PENDING} checks waiting)"));
            return self.finish(&req, checked, db).await;
        }
        let checked = match Arc::clone(&self.verify).acquire_owned().await {
            Ok(permit) => {
                let users = Arc::clone(&self.users);
                let job = req.clone();
                match tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    check(&users, &job)
                })
                .await
                {
                    Ok(checked) => checked,
                    Err(e) => Checked::TempFail(format!("password check aborted: {e}")),
                }
            }
            Err(_) => Checked::TempFail("authd is stopping".to_owned()),
        };
        self.finish(&req, checked, db).await
    }

    async fn finish(&self, req: &AuthRequest, checked: Checked, db: &str) -> AuthReply {
        let outcome = match checked {
            Checked::Ok(_) => Outcome::Success,
            Checked::Fail(_) => Outcome::Failure,
            Checked::TempFail(_) => Outcome::TempFail,
        };
        let delay = self.lock_penalty().record(req.client, &req.user, outcome, Instant::now());
        let line = log_line(req, &checked, db, delay);
        match outcome {
            Outcome::Success => tracing::info!("{line}"),
            Outcome::Failure | Outcome::TempFail => tracing::warn!("{line}"),
        }
        tokio::time::sleep(delay).await;
        match checked {
            Checked::Ok(user) => AuthReply::Ok(user),
            Checked::Fail(_) => AuthReply::Fail,
            Checked::TempFail(why) => AuthReply::TempFail(why),
        }
    }

    /// Serves one connection: requests in order until it closes, breaks,
    /// or a stop is asked (then after the request in hand).
    pub(crate) async fn serve(&self, stream: tokio::net::UnixStream) {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::with_capacity(MAX_FRAME as usize, r);
        let mut closing = self.closing.subscribe();
        loop {
            // Wait, without a limit, for the next request to start.
            tokio::select! {
                _ = closing.wait_for(|c| *c) => return,
                filled = r.fill_buf() => match filled {
                    Ok([]) | Err(_) => return,
                    Ok(_) => {}
                },
            }
            let Some(req) =
                mail_ipc::read_request_async::<AuthRequest>(&mut r, MAX_FRAME, FRAME_TIMEOUT).await
            else {
                return;
            };
            let reply = self.answer(req).await;
            let sent =
                tokio::time::timeout(FRAME_TIMEOUT, mail_ipc::write_frame_async(&mut w, &reply))
                    .await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::warn!("closing a client connection: cannot send a reply");
                return;
            }
        }
    }
}

impl Service for Authd {
    async fn connection(self: Arc<Self>, conn: Connection) {
        match conn {
            Connection::Unix(stream) => self.serve(stream).await,
            Connection::Tcp { peer, .. } => {
                tracing::warn!("refusing a TCP connection from {peer}: authd is a unix service");
            }
        }
    }

    fn max_connections(&self) -> Option<usize> {
        Some(MAX_CONNECTIONS)
    }

    /// Sweeps the failure tables once a minute and reports evictions;
    /// on a stop request tells the connections to end.
    async fn work(self: Arc<Self>, mut stop: StopWatch) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.stopped() => {
                    self.closing.send_replace(true);
                    return Ok(());
                }
                _ = tick.tick() => {
                    let evicted = {
                        let mut p = self.lock_penalty();
                        p.sweep(Instant::now());
                        p.take_evicted()
                    };
                    if evicted > 0 {
                        tracing::warn!(
                            "failure table full ({MAX_KEYS} keys): forgot the {evicted} oldest"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_ipc::auth::{Client, Service as Proto};
    use std::io::Write;

    fn req(user: &str, password: &str, client: &str) -> AuthRequest {
        AuthRequest {
            service: Proto::Smtp,
            user: user.into(),
            password: password.into(),
            client: client.parse().unwrap(),
            tls: false,
        }
    }

    fn passwd_file(dir: &std::path::Path) -> Users {
        let path = dir.join("passwd");
        let mut f = std::fs::File::create(&path).unwrap();
        // Debian 12's `mkpasswd -m yescrypt` of "suporte".
        writeln!(f, "suporte:{{YESCRYPT}}{DUMMY_HASH}:1000:1000::/home/suporte::").unwrap();
        writeln!(f, "ana:{{PLAIN}}segredo:1001:1001::/home/ana::").unwrap();
        writeln!(f, "nopass::1002:1002::/home/nopass::").unwrap();
        Users::PasswdFile(UserDb::passwd_file(path))
    }

    #[test]
    fn passwd_file_checks() {
        let dir = tempfile::tempdir().unwrap();
        let users = passwd_file(dir.path());
        let Checked::Ok(u) = check(&users, &req("Suporte", "suporte", "192.0.2.1")) else {
            panic!("yescrypt user refused")
        };
        assert_eq!((u.user.as_str(), u.uid, u.gid), ("suporte", 1000, 1000));
        assert_eq!(u.home, std::path::PathBuf::from("/home/suporte"));
        assert!(matches!(check(&users, &req("ana", "segredo", "192.0.2.1")), Checked::Ok(_)));
        for (user, pass, why) in [
            ("suporte", "wrong", "password mismatch"),
            ("nobody-here", "suporte", "unknown user"),
            ("nopass", "x", "no password set"),
            ("ana", "", "empty password"),
            ("a\nb", "x", "malformed user name"),
            ("ana", "a\0b", "malformed password"),
        ] {
            assert_eq!(
                check(&users, &req(user, pass, "192.0.2.1")),
                Checked::Fail(why.into()),
                "{user}"
            );
        }
        let missing = Users::PasswdFile(UserDb::passwd_file(dir.path().join("none")));
        assert!(matches!(check(&missing, &req("ana", "x", "192.0.2.1")), Checked::TempFail(_)));
    }

    #[test]
    fn system_users_below_first_valid_uid_or_unknown_fail() {
        let users = Users::System { pam_service: "postern".into(), first_valid_uid: 1000 };
        let r = check(&users, &req("no-such-user-postern", "x", "192.0.2.1"));
        assert!(matches!(r, Checked::Fail(_) | Checked::TempFail(_)), "{r:?}");
    }

    #[test]
    fn log_lines_name_service_user_and_address_never_the_password() {
        let r = req("suporte", "segredo", "192.0.2.7");
        let fail = log_line(
            &r,
            &Checked::Fail("pam_authenticate: Authentication failure".into()),
            "pam",
            Duration::from_secs(2),
        );
        assert_eq!(
            fail,
            "smtp authentication failed: user=<suporte>, rhost=[192.0.2.7], tls=no, db=pam, \
             reason=pam_authenticate: Authentication failure, delay=2s"
        );
        let ok = Checked::Ok(AuthUser {
            user: "suporte".into(),
            uid: 1000,
            gid: 1000,
            home: "/h".into(),
            mail: None,
        });
        let line = log_line(&r, &ok, "passwd-file", Duration::ZERO);
        assert_eq!(
            line,
            "smtp authentication succeeded: user=<suporte>, rhost=[192.0.2.7], tls=no, uid=1000, db=passwd-file"
        );
        let odd = log_line(
            &req("a\u{7}b", "x", "::1"),
            &Checked::Fail("x".into()),
            "pam",
            Duration::ZERO,
        );
        assert!(odd.contains("user=<a\\u{7}b>"), "{odd}");
        assert!(!fail.contains("segredo") && !line.contains("segredo"));
    }

    /// The real connection loop and the real client: replies in order,
    /// delays applied, the per-client cap.
    #[tokio::test]
    async fn over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let authd = Arc::new(Authd::new(passwd_file(dir.path())));
        let path = dir.path().join("authd");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let a = Arc::clone(&authd);
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                let a = Arc::clone(&a);
                tokio::spawn(async move { a.serve(s).await });
            }
        });
        let mut c = Client::new(&path);
        let AuthReply::Ok(u) = c.authenticate(&req("ana", "segredo", "192.0.2.1")).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(u.uid, 1001);
        let t = Instant::now();
        assert_eq!(c.authenticate(&req("ana", "bad", "192.0.2.1")).await.unwrap(), AuthReply::Fail);
        assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
        // Five at once from one address: one is over the cap.
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let p = path.clone();
            tasks.push(tokio::spawn(async move {
                Client::new(p).authenticate(&req("x", "bad", "198.51.100.1")).await.unwrap()
            }));
        }
        let mut temp = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), AuthReply::TempFail(_)) {
                temp += 1;
            }
        }
        assert!(temp >= 1, "the fifth check at once was not refused");
    }
}
