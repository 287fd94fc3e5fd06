//! One delivery request: read the queue file, resolve and deliver each
//! recipient ([`Agent::begin`]), then, once the batch's Maildir
//! directories are on disk, log each result Postfix-style and build the
//! reply ([`Agent::finish`]) (Postfix `local/local.c` `local_deliver()`).
//!
//! Diagnostics: per-recipient results are info lines
//! (`QUEUEID: to=<...>, relay=local, delay=..., dsn=..., status=...`);
//! an unreadable queue file defers every recipient with a warning. Nothing
//! here is fatal.

use std::time::{SystemTime, UNIX_EPOCH};

use mail_auth::UserDb;
use mail_ipc::delivery::{DeliveryRecipient, DeliveryReply, DeliveryRequest, RecipientResult};
use mail_lookup::aliases::Aliases;
use mail_queue::{Queue, State};
use mail_types::logline::DeliveryLine;
use mail_types::{Class, DeliveryStatus, EnhancedStatus, QueueId};

use crate::group::{NewDirs, Outcome};
use crate::mailbox::{self, Message};
use crate::resolve::{Destination, Resolver};
use crate::settings::Settings;

/// A request delivered but not yet answered: per recipient (in the
/// request's order), each destination's log address and outcome.
#[derive(Debug)]
pub(crate) struct Started {
    results: Vec<Vec<(String, Outcome)>>,
}

/// Long-lived state of one worker process.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) settings: Settings,
    pub(crate) aliases: Aliases,
    pub(crate) users: UserDb,
}

impl Agent {
    pub(crate) fn new(settings: Settings) -> Agent {
        let aliases = Aliases::new(settings.alias_maps.clone());
        let users = if settings.passwd_file.as_os_str().is_empty() {
            UserDb::System
        } else {
            UserDb::passwd_file(settings.passwd_file.clone())
        };
        Agent { settings, aliases, users }
    }

    /// Handles one request on its own (a batch of one); always answers
    /// every recipient.
    #[cfg(test)]
    pub(crate) fn handle(&self, req: &DeliveryRequest) -> DeliveryReply {
        let mut dirs = NewDirs::default();
        let started = self.begin(req, &mut dirs);
        dirs.sync();
        self.finish(req, started, &dirs)
    }

    /// Delivers every recipient of `req`; Maildir deliveries wait in
    /// `dirs` for their `new/` fsync, and nothing is logged or answered
    /// before [`Agent::finish`].
    pub(crate) fn begin(&self, req: &DeliveryRequest, dirs: &mut NewDirs) -> Started {
        // The queue file is mail_owner's: read as root.
        crate::privs::root();
        // The id decoded through QueueId::parse, so it names a file in
        // active/ and nothing else.
        let content = Queue::new(&self.settings.queue_directory)
            .read(State::Active, &req.queue_id)
            .map_err(|e| e.to_string());
        let file = match content {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!("{}: cannot read queue file: {e}", req.queue_id);
                let status = DeliveryStatus::defer(
                    EnhancedStatus(4, 3, 0),
                    format!("cannot read queue file: {e}"),
                );
                let results = req
                    .recipients
                    .iter()
                    .map(|r| vec![(r.address.to_string(), Outcome::Done(status.clone()))])
                    .collect();
                return Started { results };
            }
        };
        let delivered_to: Vec<String> = mail_cleanup::header_values(&file.content, "Delivered-To")
            .into_iter()
            .map(|v| v.trim().to_ascii_lowercase())
            .collect();
        let sender = req.sender.as_ref().map(ToString::to_string).unwrap_or_default();
        let message = Message { sender: &sender, original: "", content: &file.content };
        let results = req
            .recipients
            .iter()
            .map(|r| {
                let address = r.address.to_string();
                let original = if r.original.is_empty() { &address } else { &r.original };
                let m = Message { original, ..message };
                self.recipient(r, &m, &delivered_to, dirs)
            })
            .collect();
        Started { results }
    }

    /// After `dirs` is synced: logs every destination's final result and
    /// builds the reply, one combined status per recipient.
    pub(crate) fn finish(
        &self,
        req: &DeliveryRequest,
        started: Started,
        dirs: &NewDirs,
    ) -> DeliveryReply {
        let results = req
            .recipients
            .iter()
            .zip(started.results)
            .map(|(r, outcomes)| {
                let statuses = outcomes
                    .into_iter()
                    .map(|(to, o)| {
                        let status = dirs.resolve(o);
                        self.log(req, &to, r, &status);
                        status
                    })
                    .collect();
                RecipientResult { index: r.index, status: combine(statuses) }
            })
            .collect();
        DeliveryReply { results }
    }

    /// Resolves and delivers one recipient; returns each destination's
    /// outcome with the address to log it under.
    fn recipient(
        &self,
        r: &DeliveryRecipient,
        m: &Message<'_>,
        delivered_to: &[String],
        dirs: &mut NewDirs,
    ) -> Vec<(String, Outcome)> {
        let is_loop = |address: &str| delivered_to.iter().any(|d| d.eq_ignore_ascii_case(address));
        let address = r.address.to_string();
        if is_loop(&address) {
            let status = loop_bounce(&address);
            return vec![(address, Outcome::Done(status))];
        }
        let resolver =
            Resolver { settings: &self.settings, aliases: &self.aliases, users: &self.users };
        let expansion = resolver.resolve(&address);
        let mut outcomes = Vec::new();
        for failure in &expansion.failures {
            outcomes.push((failure.address.clone(), Outcome::Done(failure.status.clone())));
        }
        for destination in &expansion.destinations {
            let outcome = if is_loop(destination.loop_address()) {
                Outcome::Done(loop_bounce(destination.loop_address()))
            } else {
                self.deliver(m, destination, dirs)
            };
            outcomes.push((destination.log_address().to_owned(), outcome));
        }
        outcomes
    }

    fn deliver(&self, m: &Message<'_>, d: &Destination, dirs: &mut NewDirs) -> Outcome {
        let s = &self.settings;
        // Only a mailbox delivery may start under a kept identity (its
        // Maildir switch to the same user takes it over); the others
        // start as root.
        if !matches!(d, Destination::Mailbox { .. }) {
            crate::privs::root();
        }
        match d {
            Destination::Mailbox { user, address, extension } => {
                mailbox::deliver_to_user(s, m, user, address, extension.as_deref(), dirs)
            }
            Destination::Forward { address, via } => {
                Outcome::Done(mailbox::forward(s, m, address, via))
            }
            Destination::File { path, owner, via } => {
                mailbox::deliver_to_file(s, m, path, *owner, via, dirs)
            }
            Destination::Command { command, owner, via, home, user } => Outcome::Done(
                mailbox::deliver_to_command(s, m, command, *owner, via, home, user.as_deref()),
            ),
        }
    }

    /// `QUEUEID: to=<ADDR>, orig_to=<ORIG>, relay=local, delay=0.12,
    /// dsn=2.0.0, status=sent (delivered to maildir)`.
    fn log(&self, req: &DeliveryRequest, to: &str, r: &DeliveryRecipient, status: &DeliveryStatus) {
        let address = r.address.to_string();
        let original = if r.original.is_empty() { &address } else { &r.original };
        let line = DeliveryLine {
            queue_id: &req.queue_id,
            to,
            orig_to: original,
            relay: "local",
            delay: log_delay(&req.queue_id, req.arrival),
            delays: None,
            status,
        };
        tracing::info!("{}", line.format());
    }
}

fn loop_bounce(address: &str) -> DeliveryStatus {
    DeliveryStatus::bounce(EnhancedStatus(5, 4, 6), format!("mail forwarding loop for {address}"))
}

/// One status for the recipient from those of its branches: deferred if
/// any branch must be retried, else bounced if any bounced, else sent.
pub(crate) fn combine(statuses: Vec<DeliveryStatus>) -> DeliveryStatus {
    let pick = |class: Class| statuses.iter().find(|s| s.class() == Some(class)).cloned();
    if let Some(s) = pick(Class::Transient).or_else(|| pick(Class::Permanent)) {
        return s;
    }
    match statuses.len() {
        0 => DeliveryStatus::bounce(EnhancedStatus(5, 3, 0), "alias expands to no destination"),
        1 => statuses.into_iter().next().unwrap_or_else(|| DeliveryStatus::sent("delivered")),
        n => {
            let first = statuses[0].text().to_owned();
            DeliveryStatus::sent(format!("{first}, and {} more", n - 1))
        }
    }
}

/// Seconds since the message arrived, for `delay=`: from the queue id's
/// time stamp when it has one (sub-second), else from the envelope's
/// whole-second arrival time. Both come from qmgr's request, which read
/// them from disk: a time that does not fit a `SystemTime` (or lies in
/// the future) gives a delay of 0 rather than a panic.
fn log_delay(queue_id: &QueueId, arrival: u64) -> f64 {
    let since = queue_id
        .created()
        .or_else(|| UNIX_EPOCH.checked_add(std::time::Duration::from_secs(arrival)));
    since.and_then(|t| SystemTime::now().duration_since(t).ok()).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    pub(crate) struct Fixture {
        pub(crate) dir: tempfile::TempDir,
        pub(crate) agent: Agent,
        queue: Queue,
    }

    pub(crate) fn fixture(aliases: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let write = |name: &str, text: &str| {
            std::fs::File::create(d.join(name)).unwrap().write_all(text.as_bytes()).unwrap()
        };
        write("passwd", &format!("suporte:x:{uid}:{gid}::{}/home/suporte\n", d.display()));
        write("aliases", aliases);
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name;
        let main = format!(
            "mail_owner = \"{me}\"\nmyhostname = \"mail.example.org\"\nmydestination = [\"$myhostname\", \"example.org\"]\n\
             queue_directory = \"{0}/queue\"\npasswd_file = \"{0}/passwd\"\nalias_maps = [\"{0}/aliases\"]\n\
             home_mailbox = \"Maildir/\"\nrecipient_delimiter = \"+\"\n",
            d.display()
        );
        let settings = Settings::from_config(
            &mail_config::Main::from_str(&d.join("main.toml"), &main).unwrap(),
        );
        let queue = Queue::new(&settings.queue_directory);
        queue.create_layout().unwrap();
        Fixture { agent: Agent::new(settings), queue, dir }
    }

    impl Fixture {
        pub(crate) fn enqueue(&self, content: &[u8], rcpts: &[&str]) -> DeliveryRequest {
            let env = mail_queue::Envelope {
                sender: Some("ana@example.com".parse().unwrap()),
                recipients: rcpts
                    .iter()
                    .map(|r| mail_queue::Recipient {
                        address: r.parse().unwrap(),
                        original: (*r).into(),
                        esmtp: Default::default(),
                    })
                    .collect(),
                arrival: 0,
                client: "test".into(),
                origin: "smtpd".into(),
                attrs: vec![],
                esmtp: Default::default(),
            };
            let id = self.queue.reserve().unwrap().commit(&env, content).unwrap();
            self.queue.move_to(&id, State::Incoming, State::Active).unwrap();
            DeliveryRequest {
                queue_id: id.clone(),
                sender: env.sender.clone(),
                arrival: 0,
                nexthop: String::new(),
                recipients: rcpts
                    .iter()
                    .enumerate()
                    .map(|(i, r)| DeliveryRecipient {
                        index: i as u32,
                        address: r.parse().unwrap(),
                        original: (*r).into(),
                    })
                    .collect(),
            }
        }

        pub(crate) fn maildir_count(&self) -> usize {
            std::fs::read_dir(self.dir.path().join("home/suporte/Maildir/new"))
                .map_or(0, |d| d.count())
        }
    }

    #[test]
    fn delivers_bounces_and_detects_loops() {
        let _lock = crate::privs::test_lock();
        let f = fixture("root: suporte\nfwd: friend@remote.example\n");
        let req = f.enqueue(
            b"Delivered-To: looped@example.org\nSubject: x\n\nhi\n",
            &[
                "suporte+tag@example.org",
                "root@example.org",
                "ghost@example.org",
                "looped@example.org",
                "fwd@example.org",
            ],
        );
        let reply = f.agent.handle(&req);
        let kinds: Vec<_> = reply
            .results
            .iter()
            .map(|r| (r.index, r.status.log_word(), r.status.dsn().to_string(), r.status.text()))
            .collect();
        let k = |i, w, d: &str, t| (i, w, d.to_owned(), t);
        assert_eq!(kinds[0], k(0, "sent", "2.0.0", "delivered to maildir"));
        assert_eq!(kinds[1], k(1, "sent", "2.0.0", "delivered to maildir"));
        assert_eq!(kinds[2], k(2, "bounced", "5.1.1", "unknown user: \"ghost\""));
        assert_eq!(
            kinds[3],
            k(3, "bounced", "5.4.6", "mail forwarding loop for looped@example.org")
        );
        assert_eq!(kinds[4].1, "sent");
        assert!(kinds[4].3.starts_with("forwarded as "), "{kinds:?}");
        // suporte twice (directly and via root): two requests' recipients,
        // two copies.
        assert_eq!(f.maildir_count(), 2);
        assert_eq!(f.queue.scan(State::Incoming).unwrap().len(), 1);
    }

    #[test]
    fn forwarded_copy_is_caught_when_it_comes_back() {
        let _lock = crate::privs::test_lock();
        let f = fixture("suporte: friend@remote.example\n");
        let req =
            f.enqueue(b"Delivered-To: suporte@mail.example.org\n\nhi\n", &["suporte@example.org"]);
        let reply = f.agent.handle(&req);
        assert_eq!(reply.results[0].status.log_word(), "bounced");
        assert_eq!(reply.results[0].status.dsn(), EnhancedStatus(5, 4, 6));
    }

    #[test]
    fn unreadable_queue_file_defers_everyone() {
        let _lock = crate::privs::test_lock();
        let f = fixture("");
        let req = DeliveryRequest {
            queue_id: QueueId::generate(),
            sender: None,
            arrival: 0,
            nexthop: String::new(),
            recipients: vec![DeliveryRecipient {
                index: 7,
                address: "suporte@example.org".parse().unwrap(),
                original: String::new(),
            }],
        };
        let reply = f.agent.handle(&req);
        assert_eq!(reply.results.len(), 1);
        assert_eq!(reply.results[0].index, 7);
        assert_eq!(reply.results[0].status.log_word(), "deferred");
        assert_eq!(reply.results[0].status.dsn(), EnhancedStatus(4, 3, 0));
        let _ = Path::new("");
    }

    #[test]
    fn arrival_times_from_disk_never_panic() {
        let _lock = crate::privs::test_lock();
        // No queue id time stamp: the envelope's arrival is used, and one
        // past what SystemTime holds (>= 2^63 s) used to panic here.
        let untimed = QueueId::parse("ZZZZZZZZZZZZZZ").unwrap();
        assert_eq!(log_delay(&untimed, u64::MAX), 0.0);
        assert_eq!(log_delay(&untimed, 1 << 63), 0.0);
        // In the future: no negative delay either.
        assert_eq!(log_delay(&untimed, 4_000_000_000), 0.0);
        assert!(log_delay(&untimed, 0) > 1_000_000_000.0);
        // Through a whole request, whose every result is logged.
        let f = fixture("");
        let req = DeliveryRequest {
            queue_id: untimed,
            sender: None,
            arrival: u64::MAX,
            nexthop: String::new(),
            recipients: vec![DeliveryRecipient {
                index: 0,
                address: "suporte@example.org".parse().unwrap(),
                original: String::new(),
            }],
        };
        let reply = f.agent.handle(&req);
        assert_eq!(reply.results[0].status.log_word(), "deferred");
    }

    #[test]
    fn combine_prefers_defer_then_bounce() {
        let _lock = crate::privs::test_lock();
        let sent = DeliveryStatus::sent("delivered to maildir");
        let bounce = DeliveryStatus::bounce(EnhancedStatus(5, 1, 1), "b");
        let defer = DeliveryStatus::defer(EnhancedStatus(4, 2, 0), "d");
        assert_eq!(combine(vec![sent.clone(), bounce.clone(), defer.clone()]), defer);
        assert_eq!(combine(vec![sent.clone(), bounce.clone()]), bounce);
        assert_eq!(combine(vec![sent.clone()]), sent);
        assert_eq!(combine(vec![sent.clone(), sent]).text(), "delivered to maildir, and 1 more");
        assert_eq!(combine(vec![]).dsn(), EnhancedStatus(5, 3, 0));
    }
}
