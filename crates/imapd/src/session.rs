//! The Authenticated and Selected states (RFC 3501 §6.3, §6.4) for one
//! user, sans I/O: a decoded command in, response bytes out. The mail
//! process (`mail.rs`) feeds it and writes what it returns; the fuzz
//! target drives it the same way.
//!
//! The client's view of the selected mailbox is mail-maildir's snapshot
//! (`Mailbox::messages`, in UID order: sequence number = position + 1).
//! Other processes' changes (deliveries, other sessions' flags and
//! expunges) are taken in by [`Session::sync`] only where RFC 3501 §7.4.1
//! allows EXPUNGE responses: after any command but FETCH, STORE and
//! SEARCH (their UID forms included in the allowance), and while IDLE.
//!
//! Severities: a mailbox that cannot be read is a tagged NO and a
//! warning; nothing here ends the process.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;

use imap_codec::imap_types::command::{
    Command, CommandBody, FetchModifier, SelectParameter, StoreModifier,
};
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_codec::imap_types::status::StatusDataItemName;
use mail_maildir::{FlagOp, Flags, FolderInfo, FolderName, Mailbox, MessageInfo, Store};

use crate::caps;
use crate::fetch;
use crate::list;
use crate::pre::{self, Pre, SearchReturn};
use crate::search;
use crate::wire::{name_string, safe};

/// The largest message file read into memory (FETCH, COPY).
pub(crate) const MAX_MESSAGE_READ: u64 = 1 << 30;

/// What the I/O loop does after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Continue,
    Logout,
    /// IDLE began (`+ idling` is out): wait for DONE or a change.
    Idle(String),
}

/// The selected mailbox.
#[derive(Debug)]
pub(crate) struct Selected {
    pub(crate) name: FolderName,
    pub(crate) mbox: Mailbox,
    pub(crate) read_only: bool,
    /// UIDs this session is the first to see (in `new/` at SELECT or at
    /// their arrival): `\Recent` (RFC 3501 §2.3.2).
    pub(crate) recent: HashSet<u32>,
    /// SEARCH RETURN (SAVE)'s result, `$` (RFC 5182), by UID.
    pub(crate) saved: Vec<u32>,
}

/// One user's session.
#[derive(Debug)]
pub(crate) struct Session {
    store: Store,
    special_use: mail_maildir::SpecialUseMap,
    /// Mailbox names travel in UTF-8 (`ENABLE UTF8=ACCEPT`, IMAP4rev2),
    /// else in modified UTF-7.
    utf8: bool,
    /// CONDSTORE is on (RFC 7162 §3.1: ENABLE, or a command that uses
    /// it): HIGHESTMODSEQ at SELECT, MODSEQ in unsolicited FETCHes.
    condstore: bool,
    /// QRESYNC is enabled (RFC 7162 §3.2.3): VANISHED replaces EXPUNGE
    /// and unsolicited FETCHes carry the UID.
    qresync: bool,
    /// The tagged OK of this command carries the selected mailbox's
    /// HIGHESTMODSEQ as it is after the sync (EXPUNGE under QRESYNC).
    highest_after_sync: bool,
    /// IMAP4rev2 is enabled (RFC 9051): ESEARCH for SEARCH, no
    /// `\Recent`, UTF-8 names.
    pub(crate) rev2: bool,
    /// The RETURN options of the SEARCH being run (the pre-parser's).
    search_return: Option<SearchReturn>,
    pub(crate) selected: Option<Selected>,
    /// Messages fetched and their octets, for the logout line.
    pub(crate) fetched: (u64, u64),
}

impl Session {
    pub(crate) fn new(root: PathBuf, special_use: mail_maildir::SpecialUseMap) -> Session {
        Session {
            store: Store::new(&root),
            special_use,
            utf8: false,
            condstore: false,
            qresync: false,
            highest_after_sync: false,
            rev2: false,
            search_return: None,
            selected: None,
            fetched: (0, 0),
        }
    }

    /// Answers one complete message from the client (a command with its
    /// literals) into `out`; `None` when it is no command the session
    /// knows (the caller answers BAD).
    pub(crate) fn message(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Option<Outcome> {
        use imap_codec::decode::Decoder;
        let decode = |bytes: &[u8], session: &mut Session, out: &mut Vec<u8>| {
            match imap_codec::CommandCodec::default().decode(bytes) {
                Ok(([], cmd)) => Some(session.command(cmd, out)),
                _ => None,
            }
        };
        match pre::prepare(raw, self) {
            Pre::Codec => decode(raw, self, out),
            Pre::Rewritten { bytes, search_return } => {
                self.search_return = search_return;
                let outcome = decode(&bytes, self, out);
                self.search_return = None;
                outcome
            }
            pre => {
                let tag = raw.split(|&b| b == b' ').next().unwrap_or_default();
                let tag = safe(&String::from_utf8_lossy(tag));
                // EXPUNGE responses may follow what these answer, except
                // an at once completed FETCH/STORE/SEARCH (RFC 3501 §7.4.1).
                let expunge_ok = !matches!(pre, Pre::Done(_) | Pre::Bad(_));
                let text = match pre {
                    Pre::List(l) => match self.list_extended(&l, out) {
                        Ok(t) | Err(t) => t,
                    },
                    Pre::Done(_) if self.selected.is_none() => "BAD No mailbox selected.".into(),
                    Pre::Done(t) | Pre::Bad(t) => t,
                    Pre::MultiAppend(commands) => match self.append_many(&commands) {
                        Ok(t) | Err(t) => t,
                    },
                    Pre::Codec | Pre::Rewritten { .. } => return None,
                };
                self.sync(out, expunge_ok);
                push(out, &format!("{tag} {text}\r\n"));
                Some(Outcome::Continue)
            }
        }
    }

    /// Answers one command into `out`.
    pub(crate) fn command(&mut self, cmd: Command<'_>, out: &mut Vec<u8>) -> Outcome {
        let tag = cmd.tag.inner().to_owned();
        let name = cmd.body.name();
        let mut expunge_ok = true;
        let (was_condstore, start) = (self.condstore, out.len());
        let result: Result<String, String> = match cmd.body {
            CommandBody::Capability => {
                push(out, &format!("* CAPABILITY {}\r\n", caps::after_login()));
                Ok("OK Capability completed.".into())
            }
            CommandBody::Noop => Ok("OK NOOP completed.".into()),
            CommandBody::Check => Ok("OK Check completed.".into()),
            CommandBody::Logout => {
                push(out, "* BYE Logging out\r\n");
                push(out, &format!("{tag} OK Logout completed.\r\n"));
                return Outcome::Logout;
            }
            CommandBody::Id { .. } => {
                out.extend_from_slice(caps::ID_RESPONSE);
                Ok("OK ID completed.".into())
            }
            CommandBody::Enable { capabilities } => {
                // Listed as asked, as Dovecot does (again if already on).
                let mut enabled = String::new();
                for c in capabilities.as_ref() {
                    let name = c.to_string().to_ascii_uppercase();
                    match name.as_str() {
                        "CONDSTORE" => self.condstore = true,
                        "QRESYNC" => {
                            self.condstore = true;
                            self.qresync = true;
                        }
                        "IMAP4REV2" => {
                            self.rev2 = true;
                            self.utf8 = true;
                        }
                        "UTF8=ACCEPT" => self.utf8 = true,
                        _ => continue,
                    }
                    enabled.push(' ');
                    enabled.push_str(if name == "IMAP4REV2" { "IMAP4rev2" } else { &name });
                }
                push(out, &format!("* ENABLED{enabled}\r\n"));
                Ok("OK Enabled.".into())
            }
            CommandBody::Namespace => {
                push(out, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
                Ok("OK Namespace completed.".into())
            }
            CommandBody::StartTLS => Err("BAD TLS is already active.".into()),
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                Err("BAD Already logged in.".into())
            }
            CommandBody::Select { mailbox, parameters } => {
                self.select(&mailbox, &parameters, false, out)
            }
            CommandBody::Examine { mailbox, parameters } => {
                self.select(&mailbox, &parameters, true, out)
            }
            CommandBody::Create { mailbox } => self.create(&mailbox),
            CommandBody::Delete { mailbox } => self.delete(&mailbox),
            CommandBody::Rename { from, to } => self.rename(&from, &to),
            CommandBody::Subscribe { mailbox } => self.subscribe(&mailbox, true),
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&mailbox, false),
            CommandBody::List { reference, mailbox_wildcard } => {
                self.list(&reference, &mailbox_wildcard, false, out)
            }
            CommandBody::Lsub { reference, mailbox_wildcard } => {
                self.list(&reference, &mailbox_wildcard, true, out)
            }
            CommandBody::Status { mailbox, item_names } => self.status(&mailbox, &item_names, out),
            CommandBody::Append { mailbox, flags, date, message } => {
                let bytes = match &message {
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
                        l.as_ref()
                    }
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
                        l.data.as_ref()
                    }
                };
                let date = date.map(|d| d.as_ref().timestamp());
                self.append(&mailbox, &flags, date, bytes)
            }
            CommandBody::Idle => {
                push(out, "+ idling\r\n");
                return Outcome::Idle(tag);
            }
            CommandBody::Unselect => match self.selected.take() {
                Some(_) => Ok("OK Unselect completed.".into()),
                None => Err("BAD No mailbox selected.".into()),
            },
            CommandBody::Close => match self.selected.take() {
                Some(mut s) => {
                    let mut expunged = false;
                    if !s.read_only {
                        let deleted = deleted_uids(&s.mbox, None);
                        match s.mbox.expunge(&deleted) {
                            Ok(gone) => expunged = !gone.is_empty(),
                            Err(e) => tracing::warn!("CLOSE: expunge: {e}"),
                        }
                    }
                    // No VANISHED follows a CLOSE: under QRESYNC the
                    // client learns the modseq its expunges reached.
                    if expunged && self.qresync && s.mbox.refresh().is_ok() {
                        Ok(format!(
                            "OK [HIGHESTMODSEQ {}] Close completed.",
                            s.mbox.highest_modseq()
                        ))
                    } else {
                        Ok("OK Close completed.".into())
                    }
                }
                None => Err("BAD No mailbox selected.".into()),
            },
            CommandBody::Expunge => self.expunge(None, out),
            CommandBody::ExpungeUid { sequence_set } => self.expunge(Some(&sequence_set), out),
            CommandBody::Fetch { sequence_set, macro_or_item_names, uid, modifiers } => {
                expunge_ok = uid;
                self.fetch(&sequence_set, &macro_or_item_names, uid, &modifiers, out)
            }
            CommandBody::Store { sequence_set, kind, response, flags, uid, modifiers } => {
                expunge_ok = uid;
                let since = modifiers.iter().map(|StoreModifier::UnchangedSince(n)| *n).next();
                self.store(&sequence_set, (kind, response), &flags, uid, since, out)
            }
            CommandBody::Copy { sequence_set, mailbox, uid } => {
                self.copy(&sequence_set, &mailbox, uid, false, out)
            }
            CommandBody::Move { sequence_set, mailbox, uid } => {
                self.copy(&sequence_set, &mailbox, uid, true, out)
            }
            CommandBody::Search { charset, criteria, uid } => {
                expunge_ok = uid;
                let ret = self.search_return.take();
                // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051
                // §6.4.4), ALL when nothing else is asked.
                let ret =
                    ret.or(self.rev2.then(|| SearchReturn { all: true, ..Default::default() }));
                match self.selected.as_mut() {
                    None => Err("BAD No mailbox selected.".into()),
                    Some(sel) => {
                        if criteria.as_ref().iter().any(search::uses_modseq) {
                            self.condstore = true;
                        }
                        let how = search::How { uid, tag: &tag, ret };
                        search::search(sel, charset.as_ref(), &criteria, &how, out)
                    }
                }
            }
            CommandBody::Sort { sort_criteria, charset, search_criteria, uid } => {
                expunge_ok = uid;
                match self.selected.as_ref() {
                    None => Err("BAD No mailbox selected.".into()),
                    Some(sel) => {
                        search::sort(sel, &sort_criteria, &charset, &search_criteria, uid, out)
                    }
                }
            }
            CommandBody::Thread { algorithm, charset, search_criteria, uid } => {
                expunge_ok = uid;
                match self.selected.as_ref() {
                    None => Err("BAD No mailbox selected.".into()),
                    Some(sel) => {
                        search::thread(sel, &algorithm, &charset, &search_criteria, uid, out)
                    }
                }
            }
            _ => Err(format!("BAD Unknown command {name}.")),
        };
        // CONDSTORE turned on by a command with a mailbox selected: the
        // client learns the modseq it starts from, first (as Dovecot).
        if !was_condstore
            && self.condstore
            && !matches!(name, "SELECT" | "EXAMINE" | "ENABLE")
            && let Some(sel) = self.selected.as_ref()
        {
            let line = format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", sel.mbox.highest_modseq());
            out.splice(start..start, line.into_bytes());
        }
        // Untagged news before the tagged reply (RFC 3501 §7).
        self.sync(out, expunge_ok);
        let result = match result {
            Ok(text) if std::mem::take(&mut self.highest_after_sync) => {
                match (self.selected.as_ref(), text.strip_prefix("OK ")) {
                    (Some(sel), Some(rest)) => {
                        Ok(format!("OK [HIGHESTMODSEQ {}] {rest}", sel.mbox.highest_modseq()))
                    }
                    _ => Ok(text),
                }
            }
            other => other,
        };
        self.highest_after_sync = false;
        match result {
            Ok(text) | Err(text) => push(out, &format!("{} {text}\r\n", safe(&tag))),
        }
        Outcome::Continue
    }

    /// Takes in other processes' changes to the selected mailbox and
    /// reports them: EXPUNGE (only when `expunge_ok`), FETCH FLAGS,
    /// EXISTS and RECENT.
    pub(crate) fn sync(&mut self, out: &mut Vec<u8>, expunge_ok: bool) {
        let Some(sel) = self.selected.as_mut() else { return };
        if !expunge_ok {
            return;
        }
        let before: Vec<u32> = sel.mbox.messages().iter().map(|m| m.uid).collect();
        let changes = match sel.mbox.refresh() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{}: cannot read the mailbox: {e}", sel.name);
                return;
            }
        };
        if changes.uid_validity_changed {
            // Every UID the client holds is void: RFC 3501 has no way to
            // say so within a selected mailbox but closing it.
            push(out, "* BYE The mailbox was rebuilt; please reconnect.\r\n");
        }
        let gone: HashSet<u32> = changes.vanished.iter().copied().collect();
        report_expunged(sel, &before, &gone, self.qresync, out);
        for uid in &changes.flags_changed {
            if let Some(i) = position(&sel.mbox, *uid) {
                let m = &sel.mbox.messages()[i];
                let flags = flag_list(&sel.mbox, m, &sel.recent);
                // RFC 7162 §3.1.4.1 and §3.2.4: the modseq once CONDSTORE
                // is on, the UID once QRESYNC is.
                let line = match (self.condstore, self.qresync) {
                    (_, true) => format!(
                        "* {} FETCH (UID {} FLAGS {flags} MODSEQ ({}))\r\n",
                        i + 1,
                        m.uid,
                        m.modseq
                    ),
                    (true, false) => {
                        format!("* {} FETCH (FLAGS {flags} MODSEQ ({}))\r\n", i + 1, m.modseq)
                    }
                    _ => format!("* {} FETCH (FLAGS {flags})\r\n", i + 1),
                };
                push(out, &line);
            }
        }
        if !changes.added.is_empty() {
            push(out, &format!("* {} EXISTS\r\n", sel.mbox.messages().len()));
            if !self.rev2 {
                for m in sel.mbox.messages() {
                    if m.in_new && changes.added.contains(&m.uid) {
                        sel.recent.insert(m.uid);
                    }
                }
                push(out, &format!("* {} RECENT\r\n", sel.recent.len()));
            }
        }
    }

    fn resolve(&self, mailbox: &WireMailbox<'_>) -> Result<FolderName, String> {
        match mailbox {
            WireMailbox::Inbox => Ok(FolderName::inbox()),
            WireMailbox::Other(o) => {
                let raw = o.as_ref();
                // `CREATE a.` names `a` (RFC 3501 §6.3.3).
                let raw = raw.strip_suffix(b".").unwrap_or(raw);
                std::str::from_utf8(raw)
                    .ok()
                    .and_then(|s| FolderName::from_imap(s, self.utf8).ok())
                    .ok_or_else(|| "NO Invalid mailbox name.".to_string())
            }
        }
    }

    /// The name as this session writes it on the wire.
    fn wire_name(&self, name: &FolderName) -> String {
        name.to_imap(self.utf8)
    }

    fn exists(&self, name: &FolderName) -> Result<bool, String> {
        self.store.exists(name).map_err(|e| {
            tracing::warn!("{name}: {e}");
            "NO [SERVERBUG] Cannot read the mailbox list.".to_string()
        })
    }

    fn no_such(&self, name: &FolderName) -> String {
        format!("NO [NONEXISTENT] Mailbox doesn't exist: {}", safe(&self.wire_name(name)))
    }

    fn select(
        &mut self,
        mailbox: &WireMailbox<'_>,
        parameters: &[SelectParameter],
        read_only: bool,
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1);
        // IMAP4rev2 and QRESYNC clients are told (RFC 9051 §7.1, RFC 7162
        // §3.2.11), so they know where the old mailbox's responses end.
        if self.selected.take().is_some() && (self.rev2 || self.qresync) {
            push(out, "* OK [CLOSED] Previous mailbox closed.\r\n");
        }
        let mut resync = None;
        for p in parameters {
            match p {
                SelectParameter::CondStore => self.condstore = true,
                SelectParameter::QResync { .. } if !self.qresync => {
                    return Err("BAD QRESYNC isn't enabled.".into());
                }
                SelectParameter::QResync {
                    uid_validity, mod_sequence_value, known_uids, ..
                } => {
                    // seq-match-data only helps a server whose expunge
                    // memory is short; ours answers without it.
                    resync = Some((uid_validity.get(), mod_sequence_value.get(), known_uids));
                }
            }
        }
        let name = self.resolve(mailbox)?;
        if !self.exists(&name)? {
            return Err(self.no_such(&name));
        }
        let mbox = open(&self.store, &name)?;
        // IMAP4rev2 has no \Recent, no RECENT and no UNSEEN code.
        let recent: HashSet<u32> = if self.rev2 {
            HashSet::new()
        } else {
            mbox.messages().iter().filter(|m| m.in_new).map(|m| m.uid).collect()
        };
        push(out, &flags_lines(&mbox, read_only));
        push(out, &format!("* {} EXISTS\r\n", mbox.messages().len()));
        if !self.rev2 {
            push(out, &format!("* {} RECENT\r\n", recent.len()));
            if let Some(i) = mbox.messages().iter().position(|m| !m.flags.contains(Flags::SEEN)) {
                push(out, &format!("* OK [UNSEEN {}] First unseen.\r\n", i + 1));
            }
        }
        push(out, &format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", mbox.uid_validity()));
        push(out, &format!("* OK [UIDNEXT {}] Predicted next UID\r\n", mbox.uid_next()));
        if self.condstore {
            push(out, &format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", mbox.highest_modseq()));
        }
        // QRESYNC (RFC 7162 §3.2.5): what the client missed since its
        // modseq, if its UIDs are still valid.
        if let Some((validity, since, known)) = resync
            && validity == mbox.uid_validity()
        {
            let star = mbox.uid_next().saturating_sub(1).max(1);
            let known = known.as_ref().map(|k| set_ranges(k, star));
            let mut vanished = mbox.vanished_since(since);
            if let Some(k) = &known {
                vanished = intersect(&vanished, k);
            }
            if !vanished.is_empty() {
                push(out, &format!("* VANISHED (EARLIER) {}\r\n", format_ranges(&vanished)));
            }
            for (i, m) in mbox.messages().iter().enumerate() {
                if m.modseq <= since || known.as_ref().is_some_and(|k| !in_ranges(k, m.uid)) {
                    continue;
                }
                push(
                    out,
                    &format!(
                        "* {} FETCH (UID {} FLAGS {} MODSEQ ({}))\r\n",
                        i + 1,
                        m.uid,
                        flag_list(&mbox, m, &recent),
                        m.modseq
                    ),
                );
            }
        }
        self.selected = Some(Selected { name, mbox, read_only, recent, saved: Vec::new() });
        Ok(if read_only {
            "OK [READ-ONLY] Examine completed.".into()
        } else {
            "OK [READ-WRITE] Select completed.".into()
        })
    }

    fn create(&mut self, mailbox: &WireMailbox<'_>) -> Result<String, String> {
        let name = self.resolve(mailbox)?;
        match self.store.create(&name) {
            Ok(()) => Ok("OK Create completed.".into()),
            Err(mail_maildir::Error::FolderExists { .. }) => {
                Err("NO [ALREADYEXISTS] Mailbox already exists".into())
            }
            Err(e) => {
                tracing::warn!("CREATE {name}: {e}");
                Err("NO [CANNOT] Cannot create the mailbox.".into())
            }
        }
    }

    fn delete(&mut self, mailbox: &WireMailbox<'_>) -> Result<String, String> {
        let name = self.resolve(mailbox)?;
        if name.is_inbox() {
            return Err("NO [CANNOT] INBOX can't be deleted.".into());
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            return Err("NO [CANNOT] Can't delete the selected mailbox.".into());
        }
        match self.store.delete(&name) {
            Ok(()) => {}
            Err(mail_maildir::Error::NoFolder { .. }) => return Err(self.no_such(&name)),
            Err(e) => {
                tracing::warn!("DELETE {name}: {e}");
                return Err("NO [CANNOT] Cannot delete the mailbox.".into());
            }
        }
        if let Err(e) = self.store.unsubscribe(&name) {
            tracing::warn!("DELETE {name}: unsubscribe: {e}");
        }
        Ok("OK Delete completed.".into())
    }

    fn rename(&mut self, from: &WireMailbox<'_>, to: &WireMailbox<'_>) -> Result<String, String> {
        let from = self.resolve(from)?;
        let to = self.resolve(to)?;
        if self.selected.as_ref().is_some_and(|s| s.name == from || s.name.is_below(&from)) {
            self.selected = None;
        }
        match self.store.rename(&from, &to) {
            Ok(()) => Ok("OK Rename completed.".into()),
            Err(mail_maildir::Error::FolderExists { .. }) => {
                Err("NO [ALREADYEXISTS] Mailbox already exists".into())
            }
            Err(mail_maildir::Error::NoFolder { .. }) => Err(self.no_such(&from)),
            Err(mail_maildir::Error::NotPermitted { .. }) => {
                Err("NO [CANNOT] Can't rename a mailbox under itself.".into())
            }
            Err(e) => {
                tracing::warn!("RENAME {from} {to}: {e}");
                Err("NO [CANNOT] Cannot rename the mailbox.".into())
            }
        }
    }

    fn subscribe(&mut self, mailbox: &WireMailbox<'_>, on: bool) -> Result<String, String> {
        let name = self.resolve(mailbox)?;
        if on && !self.exists(&name)? {
            return Err(self.no_such(&name));
        }
        let done = if on { self.store.subscribe(&name) } else { self.store.unsubscribe(&name) };
        done.map_err(|e| {
            tracing::warn!("SUBSCRIBE {name}: {e}");
            "NO [SERVERBUG] Cannot update the subscriptions.".to_string()
        })?;
        Ok(if on { "OK Subscribe completed." } else { "OK Unsubscribe completed." }.into())
    }

    /// Every folder with its LIST attributes (`\NonExistent \Noselect` for
    /// a parent that exists only by its children, CHILDREN's and
    /// SPECIAL-USE's).
    fn listing(&self) -> Result<Vec<(FolderInfo, Vec<&'static str>)>, String> {
        let folders = self.store.list().map_err(|e| {
            tracing::warn!("LIST: {e}");
            "NO [SERVERBUG] Cannot read the mailbox list.".to_string()
        })?;
        Ok(folders
            .into_iter()
            .map(|f| {
                let mut attributes = Vec::new();
                if !f.selectable {
                    attributes.push("\\NonExistent");
                    attributes.push("\\Noselect");
                }
                attributes.push(if f.has_children { "\\HasChildren" } else { "\\HasNoChildren" });
                if f.selectable
                    && let Some(u) = self.special_use.get(&f.name)
                {
                    attributes.push(u.as_imap());
                }
                (f, attributes)
            })
            .collect())
    }

    fn list(
        &mut self,
        reference: &WireMailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match reference {
            WireMailbox::Inbox => "INBOX".to_owned(),
            WireMailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        if pattern.is_empty() {
            push(out, &format!("* {verb} (\\Noselect) \".\" \"\"\r\n"));
            return Ok(format!("OK {} completed.", title(verb)));
        }
        let full = format!("{reference}{pattern}");
        let all = self.listing()?;
        let wanted: Vec<(String, Vec<&'static str>)> = if lsub {
            let subscribed = self.store.subscriptions().map_err(|e| {
                tracing::warn!("LSUB: {e}");
                "NO [SERVERBUG] Cannot read the subscriptions.".to_string()
            })?;
            subscribed
                .into_iter()
                .map(|n| {
                    let found = all.iter().find(|(f, _)| f.name == n && f.selectable);
                    let attributes = match found {
                        Some((_, a)) => {
                            a.iter().copied().filter(|a| *a != "\\NonExistent").collect()
                        }
                        None => vec!["\\Noselect"],
                    };
                    (self.wire_name(&n), attributes)
                })
                .collect()
        } else {
            all.into_iter().map(|(f, a)| (self.wire_name(&f.name), a)).collect()
        };
        for (name, attributes) in wanted {
            if !list::matches(&full, &name) {
                continue;
            }
            let mut line = format!("* {verb} ({}) \".\" ", attributes.join(" ")).into_bytes();
            name_string(&mut line, &name, self.utf8);
            line.extend_from_slice(b"\r\n");
            out.extend_from_slice(&line);
        }
        Ok(format!("OK {} completed.", title(verb)))
    }

    fn status(
        &mut self,
        mailbox: &WireMailbox<'_>,
        items: &[StatusDataItemName],
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        let name = self.resolve(mailbox)?;
        if !self.exists(&name)? {
            return Err(self.no_such(&name));
        }
        let opened;
        let (mbox, recent) = match self.selected.as_ref() {
            Some(s) if s.name == name => (&s.mbox, s.recent.len()),
            _ => {
                opened = open(&self.store, &name)?;
                let r = opened.messages().iter().filter(|m| m.in_new).count();
                (&opened, r)
            }
        };
        // STATUS HIGHESTMODSEQ turns CONDSTORE on (RFC 7162 §3.1).
        let enables = items.contains(&StatusDataItemName::HighestModSeq);
        let line = status_line(mbox, recent, &self.wire_name(&name), self.utf8, items)?;
        out.extend_from_slice(&line);
        self.condstore |= enables;
        Ok("OK Status completed.".into())
    }

    /// LIST in RFC 5258's form (LIST-EXTENDED), with RFC 6154's
    /// SPECIAL-USE and RFC 5819's STATUS. Attributes are those asked for
    /// (Dovecot's reading): `\NonExistent` always, `\Subscribed`,
    /// children and special-use ones when selected or returned.
    fn list_extended(&mut self, l: &list::Extended, out: &mut Vec<u8>) -> Result<String, String> {
        if l.recursive && !l.subscribed {
            return Err(
                "BAD Error in IMAP command LIST: RECURSIVEMATCH must not be the only selection"
                    .into(),
            );
        }
        let items: Option<Vec<StatusDataItemName>> = match &l.return_status {
            None => None,
            Some(names) => {
                Some(names.iter().map(|n| status_item(n)).collect::<Option<Vec<_>>>().ok_or_else(
                    || "BAD Error in IMAP command LIST: Unknown STATUS item".to_string(),
                )?)
            }
        };
        let reference = String::from_utf8_lossy(&l.reference).into_owned();
        let patterns: Vec<String> = l
            .patterns
            .iter()
            .map(|p| format!("{reference}{}", String::from_utf8_lossy(p)))
            .collect();
        if l.patterns.iter().all(|p| p.is_empty()) {
            push(out, "* LIST (\\Noselect) \".\" \"\"\r\n");
            return Ok("OK List completed.".into());
        }
        let folders = self.store.list().map_err(|e| {
            tracing::warn!("LIST: {e}");
            "NO [SERVERBUG] Cannot read the mailbox list.".to_string()
        })?;
        let subscribed: HashSet<FolderName> = if l.subscribed || l.return_subscribed {
            self.store
                .subscriptions()
                .map_err(|e| {
                    tracing::warn!("LIST: {e}");
                    "NO [SERVERBUG] Cannot read the subscriptions.".to_string()
                })?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        let mut entries: Vec<FolderInfo> = folders;
        // Subscribed names without a folder list too (RFC 5258 §3.1).
        for n in &subscribed {
            if !entries.iter().any(|f| &f.name == n) {
                entries.push(FolderInfo {
                    name: n.clone(),
                    selectable: false,
                    has_children: false,
                });
            }
        }
        // INBOX stays first, the rest by name.
        if let Some(rest) = entries.get_mut(1..) {
            rest.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let matches = |name: &str| patterns.iter().any(|p| list::matches(p, name));
        for f in &entries {
            let wire = self.wire_name(&f.name);
            if !matches(&wire) {
                continue;
            }
            let is_subscribed = subscribed.contains(&f.name);
            // RECURSIVEMATCH: a subscribed descendant the patterns do not
            // list themselves (RFC 5258 §3.5).
            let child_info = l.recursive
                && subscribed.iter().any(|s| s.is_below(&f.name) && !matches(&self.wire_name(s)));
            if l.subscribed && !is_subscribed && !child_info {
                continue;
            }
            let special = if f.selectable { self.special_use.get(&f.name) } else { None };
            if l.special_use && special.is_none() {
                continue;
            }
            let mut attributes = Vec::new();
            if !f.selectable {
                attributes.push("\\NonExistent");
            }
            if (l.subscribed || l.return_subscribed) && is_subscribed {
                attributes.push("\\Subscribed");
            }
            if l.return_children {
                attributes.push(if f.has_children { "\\HasChildren" } else { "\\HasNoChildren" });
            }
            if (l.special_use || l.return_special_use)
                && let Some(u) = special
            {
                attributes.push(u.as_imap());
            }
            let mut line = format!("* LIST ({}) \".\" ", attributes.join(" ")).into_bytes();
            name_string(&mut line, &wire, self.utf8);
            if child_info {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            out.extend_from_slice(&line);
            // LIST-STATUS (RFC 5819): right after its LIST line, for a
            // mailbox that can be opened; one that cannot is left out.
            if let Some(items) = &items
                && f.selectable
            {
                let status = match self.selected.as_ref() {
                    Some(s) if s.name == f.name => {
                        status_line(&s.mbox, s.recent.len(), &wire, self.utf8, items)
                    }
                    _ => match self.store.open(&f.name) {
                        Ok(m) => {
                            let r = if self.rev2 {
                                0
                            } else {
                                m.messages().iter().filter(|m| m.in_new).count()
                            };
                            status_line(&m, r, &wire, self.utf8, items)
                        }
                        Err(e) => {
                            tracing::warn!("LIST STATUS {}: {e}", f.name);
                            continue;
                        }
                    },
                };
                if let Ok(line) = status {
                    out.extend_from_slice(&line);
                }
                self.condstore |= items.contains(&StatusDataItemName::HighestModSeq);
            }
        }
        Ok("OK List completed.".into())
    }
}

/// `* STATUS name (items)` for an open mailbox.
fn status_line(
    mbox: &Mailbox,
    recent: usize,
    wire: &str,
    utf8: bool,
    items: &[StatusDataItemName],
) -> Result<Vec<u8>, String> {
    {
        let msgs = mbox.messages();
        let mut parts = Vec::new();
        for item in items {
            parts.push(match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", msgs.len()),
                StatusDataItemName::Recent => format!("RECENT {recent}"),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", mbox.uid_next()),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", mbox.uid_validity()),
                StatusDataItemName::Unseen => format!(
                    "UNSEEN {}",
                    msgs.iter().filter(|m| !m.flags.contains(Flags::SEEN)).count()
                ),
                StatusDataItemName::Deleted => format!(
                    "DELETED {}",
                    msgs.iter().filter(|m| m.flags.contains(Flags::DELETED)).count()
                ),
                StatusDataItemName::Size => {
                    format!("SIZE {}", msgs.iter().map(|m| m.size).sum::<u64>())
                }
                StatusDataItemName::HighestModSeq => {
                    format!("HIGHESTMODSEQ {}", mbox.highest_modseq())
                }
                _ => return Err("BAD Unsupported STATUS item.".into()),
            });
        }
        let mut line = b"* STATUS ".to_vec();
        name_string(&mut line, wire, utf8);
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Ok(line)
    }
}

/// A STATUS item by name (LIST-STATUS's items come from the
/// pre-parser, as text).
fn status_item(name: &str) -> Option<StatusDataItemName> {
    Some(match name {
        "MESSAGES" => StatusDataItemName::Messages,
        "RECENT" => StatusDataItemName::Recent,
        "UIDNEXT" => StatusDataItemName::UidNext,
        "UIDVALIDITY" => StatusDataItemName::UidValidity,
        "UNSEEN" => StatusDataItemName::Unseen,
        "DELETED" => StatusDataItemName::Deleted,
        "SIZE" => StatusDataItemName::Size,
        "HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
        _ => return None,
    })
}

impl Session {
    fn append(
        &mut self,
        mailbox: &WireMailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<i64>,
        message: &[u8],
    ) -> Result<String, String> {
        let name = self.resolve(mailbox)?;
        if !self.exists(&name)? {
            return Err(format!(
                "NO [TRYCREATE] Mailbox doesn't exist: {}",
                safe(&self.wire_name(&name))
            ));
        }
        if message.is_empty() {
            return Err("NO Can't save a zero byte message.".into());
        }
        let mut dest = open(&self.store, &name)?;
        let flags = parse_flags(&mut dest, flags)?;
        let uid = dest.append(message, flags, date).map_err(|e| {
            tracing::warn!("APPEND {name}: {e}");
            "NO [SERVERBUG] Cannot save the message.".to_string()
        })?;
        Ok(format!("OK [APPENDUID {} {uid}] Append completed.", dest.uid_validity()))
    }
    /// MULTIAPPEND (RFC 3502): every message or none. Each one is an
    /// APPEND the pre-parser split off; they are written one by one, and
    /// the ones written are expunged again if a later one fails.
    fn append_many(&mut self, commands: &[Vec<u8>]) -> Result<String, String> {
        use imap_codec::decode::Decoder;
        use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
        let codec = imap_codec::CommandCodec::default();
        let mut decoded = Vec::with_capacity(commands.len());
        for c in commands {
            match codec.decode(c) {
                Ok(([], cmd)) => match cmd.body {
                    CommandBody::Append { mailbox, flags, date, message } => {
                        decoded.push((mailbox, flags, date, message));
                    }
                    _ => return Err("BAD Error in IMAP command received by server.".into()),
                },
                _ => return Err("BAD Error in IMAP command received by server.".into()),
            }
        }
        let Some((mailbox, ..)) = decoded.first() else {
            return Err("BAD Error in IMAP command received by server.".into());
        };
        let name = self.resolve(mailbox)?;
        if !self.exists(&name)? {
            return Err(format!(
                "NO [TRYCREATE] Mailbox doesn't exist: {}",
                safe(&self.wire_name(&name))
            ));
        }
        let mut dest = open(&self.store, &name)?;
        let mut uids = Vec::new();
        let mut failure = None;
        for (_, flags, date, message) in &decoded {
            let bytes = match message {
                LiteralOrLiteral8::Literal(l) => l.as_ref(),
                LiteralOrLiteral8::Literal8(l) => l.data.as_ref(),
            };
            if bytes.is_empty() {
                failure = Some("NO Can't save a zero byte message.".to_string());
                break;
            }
            let flags = match parse_flags(&mut dest, flags) {
                Ok(f) => f,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            match dest.append(bytes, flags, date.as_ref().map(|d| d.as_ref().timestamp())) {
                Ok(uid) => uids.push(uid),
                Err(e) => {
                    tracing::warn!("APPEND {name}: {e}");
                    failure = Some("NO [SERVERBUG] Cannot save the message.".into());
                    break;
                }
            }
        }
        if let Some(f) = failure {
            if !uids.is_empty() {
                // Seen by the next refresh of any session as added, then
                // expunged: what RFC 3502 asks ("none appended") allows
                // when the store cannot append several at once.
                let _ = dest.refresh();
                if let Err(e) = dest.expunge(&uids) {
                    tracing::warn!("APPEND {name}: cannot take back {uids:?}: {e}");
                }
            }
            return Err(f);
        }
        let set = format_ranges(&mail_maildir::uidlist::to_ranges(uids));
        Ok(format!("OK [APPENDUID {} {set}] Append completed.", dest.uid_validity()))
    }

    fn expunge(&mut self, set: Option<&SequenceSet>, out: &mut Vec<u8>) -> Result<String, String> {
        let Some(sel) = self.selected.as_mut() else {
            return Err("BAD No mailbox selected.".into());
        };
        if sel.read_only {
            return Err("NO [READ-ONLY] Mailbox is read-only.".into());
        }
        let only: Option<HashSet<u32>> =
            set.map(|s| resolve_uids(&sel.mbox, s).into_iter().collect());
        let deleted = deleted_uids(&sel.mbox, only.as_ref());
        let before: Vec<u32> = sel.mbox.messages().iter().map(|m| m.uid).collect();
        let removed: HashSet<u32> = match sel.mbox.expunge(&deleted) {
            Ok(r) => r.into_iter().collect(),
            Err(e) => {
                tracing::warn!("EXPUNGE: {e}");
                return Err("NO [SERVERBUG] Cannot expunge.".into());
            }
        };
        report_expunged(sel, &before, &removed, self.qresync, out);
        // As Dovecot: the client's new modseq, since VANISHED carries none.
        self.highest_after_sync = self.qresync;
        Ok("OK Expunge completed.".into())
    }

    fn fetch(
        &mut self,
        set: &SequenceSet,
        items: &MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: &[FetchModifier],
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        let Some(sel) = self.selected.as_mut() else {
            return Err("BAD No mailbox selected.".into());
        };
        let mut since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(n) => since = Some(n.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && !(uid && self.qresync && since.is_some()) {
            // RFC 7162 §3.2.6: UID FETCH only, with CHANGEDSINCE, once
            // QRESYNC is enabled.
            return Err("BAD VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC.".into());
        }
        let wants_modseq = match items {
            MacroOrMessageDataItemNames::MessageDataItemNames(v) => {
                v.contains(&MessageDataItemName::ModSeq)
            }
            MacroOrMessageDataItemNames::Macro(_) => false,
        };
        self.condstore |= since.is_some() || wants_modseq;
        if vanished && let Some(n) = since {
            let star = sel.mbox.uid_next().saturating_sub(1).max(1);
            let gone = intersect(&sel.mbox.vanished_since(n), &set_ranges(set, star));
            if !gone.is_empty() {
                push(out, &format!("* VANISHED (EARLIER) {}\r\n", format_ranges(&gone)));
            }
        }
        fetch::fetch(sel, set, items, uid, since, out, &mut self.fetched)
    }

    fn store(
        &mut self,
        set: &SequenceSet,
        (kind, response): (StoreType, StoreResponse),
        flags: &[Flag<'_>],
        uid: bool,
        unchanged_since: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        let Some(sel) = self.selected.as_mut() else {
            return Err("BAD No mailbox selected.".into());
        };
        if sel.read_only {
            return Err("NO [READ-ONLY] Mailbox is read-only.".into());
        }
        self.condstore |= unchanged_since.is_some();
        let known = sel.mbox.keywords().all().count();
        let given = parse_flags(&mut sel.mbox, flags)?;
        if sel.mbox.keywords().all().count() != known {
            // New keywords: the client learns the mailbox's new FLAGS.
            push(out, &flags_lines(&sel.mbox, false));
        }
        let uids: Vec<u32> =
            indices(&sel.mbox, set, uid)?.into_iter().map(|i| sel.mbox.messages()[i].uid).collect();
        let op = match kind {
            StoreType::Replace => FlagOp::Replace,
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
        };
        let stored = sel.mbox.store(&uids, op, given, unchanged_since).map_err(|e| {
            tracing::warn!("STORE: {e}");
            "NO [SERVERBUG] Cannot store the flags.".to_string()
        })?;
        let silent = response != StoreResponse::Answer;
        for s in &stored.updated {
            let Some(i) = position(&sel.mbox, s.uid) else { continue };
            // With CONDSTORE even .SILENT reports a new modseq (RFC 7162
            // §3.1.3); Dovecot's order: UID, MODSEQ, FLAGS.
            if silent && !(self.condstore && s.changed) {
                continue;
            }
            let m = &sel.mbox.messages()[i];
            let mut items = Vec::new();
            if uid || self.qresync {
                items.push(format!("UID {}", s.uid));
            }
            if self.condstore {
                items.push(format!("MODSEQ ({})", s.modseq));
            }
            if !silent {
                items.push(format!("FLAGS {}", flag_list(&sel.mbox, m, &sel.recent)));
            }
            push(out, &format!("* {} FETCH ({})\r\n", i + 1, items.join(" ")));
        }
        if !stored.gone.is_empty() {
            return Err("NO [EXPUNGEISSUED] Some of the requested messages no longer exist.".into());
        }
        if !stored.modified.is_empty() {
            let ids: Vec<u32> = if uid {
                stored.modified.clone()
            } else {
                stored
                    .modified
                    .iter()
                    .filter_map(|u| position(&sel.mbox, *u).map(|i| i as u32 + 1))
                    .collect()
            };
            return Ok(format!(
                "OK [MODIFIED {}] Conditional store failed.",
                format_ranges(&mail_maildir::uidlist::to_ranges(ids))
            ));
        }
        Ok("OK Store completed.".into())
    }

    fn copy(
        &mut self,
        set: &SequenceSet,
        mailbox: &WireMailbox<'_>,
        uid: bool,
        moving: bool,
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        let dest = self.resolve(mailbox)?;
        let Some(sel) = self.selected.as_ref() else {
            return Err("BAD No mailbox selected.".into());
        };
        if moving && sel.read_only {
            return Err("NO [READ-ONLY] Mailbox is read-only.".into());
        }
        if !self.exists(&dest)? {
            return Err(format!(
                "NO [TRYCREATE] Mailbox doesn't exist: {}",
                safe(&self.wire_name(&dest))
            ));
        }
        let uids: Vec<u32> =
            indices(&sel.mbox, set, uid)?.into_iter().map(|i| sel.mbox.messages()[i].uid).collect();
        let mut dest_box = open(&self.store, &dest)?;
        let validity = dest_box.uid_validity();
        let pairs = sel.mbox.copy(&uids, &mut dest_box).map_err(|e| {
            tracing::warn!("COPY to {dest}: {e}");
            "NO [SERVERBUG] Cannot copy the messages.".to_string()
        })?;
        if pairs.len() != uids.len() {
            return Err("NO [EXPUNGEISSUED] Some of the requested messages no longer exist.".into());
        }
        if pairs.is_empty() {
            return Ok("OK No messages found.".into());
        }
        let code = format!(
            "COPYUID {validity} {} {}",
            uid_set(pairs.iter().map(|p| p.0)),
            uid_set(pairs.iter().map(|p| p.1))
        );
        if !moving {
            return Ok(format!("OK [{code}] Copy completed."));
        }
        push(out, &format!("* OK [{code}] Moved UIDs.\r\n"));
        let Some(sel) = self.selected.as_mut() else { return Ok("OK Move completed.".into()) };
        let before: Vec<u32> = sel.mbox.messages().iter().map(|m| m.uid).collect();
        let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let removed: HashSet<u32> = match sel.mbox.expunge(&src) {
            Ok(r) => r.into_iter().collect(),
            Err(e) => {
                tracing::warn!("MOVE: expunge: {e}");
                HashSet::new()
            }
        };
        report_expunged(sel, &before, &removed, self.qresync, out);
        Ok("OK Move completed.".into())
    }
}

impl pre::Saved for Session {
    fn saved(&self, uid: bool) -> Option<String> {
        let sel = self.selected.as_ref()?;
        let ids: Vec<u32> = sel
            .saved
            .iter()
            .filter_map(|u| position(&sel.mbox, *u).map(|i| if uid { *u } else { i as u32 + 1 }))
            .collect();
        (!ids.is_empty()).then(|| format_ranges(&mail_maildir::uidlist::to_ranges(ids)))
    }
}

/// Reports this session's or another's expunges of the UIDs in `gone`
/// (`before` is the snapshot the client knows): EXPUNGE per message,
/// highest number first, or one VANISHED under QRESYNC (RFC 7162 §3.2.10).
fn report_expunged(
    sel: &mut Selected,
    before: &[u32],
    gone: &HashSet<u32>,
    qresync: bool,
    out: &mut Vec<u8>,
) {
    let mut uids = Vec::new();
    for (i, uid) in before.iter().enumerate().rev() {
        if gone.contains(uid) {
            if !qresync {
                push(out, &format!("* {} EXPUNGE\r\n", i + 1));
            }
            sel.recent.remove(uid);
            uids.push(*uid);
        }
    }
    if qresync && !uids.is_empty() {
        let ranges = mail_maildir::uidlist::to_ranges(uids);
        push(out, &format!("* VANISHED {}\r\n", format_ranges(&ranges)));
    }
}

/// A sequence set as ascending disjoint ranges, `*` being `star`.
fn set_ranges(set: &SequenceSet, star: u32) -> Vec<(u32, u32)> {
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    };
    let mut v: Vec<(u32, u32)> = set
        .0
        .as_ref()
        .iter()
        .map(|seq| match seq {
            Sequence::Single(s) => (value(s), value(s)),
            Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
        })
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some((_, h)) if lo <= h.saturating_add(1) => *h = (*h).max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Whether `v` is in ascending disjoint `ranges`.
fn in_ranges(ranges: &[(u32, u32)], v: u32) -> bool {
    let i = ranges.partition_point(|(_, hi)| *hi < v);
    ranges.get(i).is_some_and(|(lo, _)| *lo <= v)
}

/// The common part of two ascending disjoint range lists.
fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
}

/// Ranges as IMAP writes a set: `1:3,7`.
pub(crate) fn format_ranges(ranges: &[(u32, u32)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}:{b}") })
        .collect();
    parts.join(",")
}

fn title(verb: &str) -> &'static str {
    if verb == "LSUB" { "Lsub" } else { "List" }
}

pub(crate) fn push(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn open(store: &Store, name: &FolderName) -> Result<Mailbox, String> {
    store.open(name).map_err(|e| {
        tracing::warn!("cannot open {name}: {e}");
        if e.is_transient() {
            "NO [INUSE] Mailbox is busy, try again later.".to_string()
        } else {
            "NO [SERVERBUG] Cannot open the mailbox.".to_string()
        }
    })
}

/// A message file that another process removed.
pub(crate) struct Gone;

/// The whole message as stored (bare LFs as they are).
pub(crate) fn read_message(mbox: &Mailbox, uid: u32) -> Result<Vec<u8>, Gone> {
    let file = mbox.open_message(uid).map_err(|e| {
        if !matches!(e, mail_maildir::Error::NotFound { .. }) {
            tracing::warn!("UID {uid}: {e}");
        }
        Gone
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_MESSAGE_READ).read_to_end(&mut bytes).map_err(|e| {
        tracing::warn!("UID {uid}: read error: {e}");
        Gone
    })?;
    Ok(bytes)
}

/// The position of `uid` in the snapshot.
pub(crate) fn position(mbox: &Mailbox, uid: u32) -> Option<usize> {
    mbox.messages().binary_search_by_key(&uid, |m| m.uid).ok()
}

/// `(\Seen \Recent $Label ...)` for a message of `mbox`.
pub(crate) fn flag_list(mbox: &Mailbox, m: &MessageInfo, recent: &HashSet<u32>) -> String {
    let mut v = Vec::new();
    for (f, name) in [
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::SEEN, "\\Seen"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if m.flags.contains(f) {
            v.push(name);
        }
    }
    if recent.contains(&m.uid) {
        v.push("\\Recent");
    }
    v.extend(mbox.keywords().names(m.flags));
    format!("({})", v.join(" "))
}

/// The flags named, keywords given letters of `mbox`'s table (new ones
/// added to it: the caller then sends FLAGS again). An unknown `\Flag`
/// extension is refused.
fn parse_flags(mbox: &mut Mailbox, flags: &[Flag<'_>]) -> Result<Flags, String> {
    let mut out = Flags::EMPTY;
    let mut keywords = Vec::new();
    for f in flags {
        out = out.with(match f {
            Flag::Answered => Flags::ANSWERED,
            Flag::Deleted => Flags::DELETED,
            Flag::Draft => Flags::DRAFT,
            Flag::Flagged => Flags::FLAGGED,
            Flag::Seen => Flags::SEEN,
            Flag::Extension(_) => return Err("BAD Unknown system flag.".into()),
            Flag::Keyword(k) => {
                keywords.push(k.inner().to_owned());
                Flags::EMPTY
            }
        });
    }
    if !keywords.is_empty() {
        let names: Vec<&str> = keywords.iter().map(String::as_str).collect();
        out = out.with(mbox.keyword_flags(&names).map_err(|e| {
            tracing::warn!("keywords: {e}");
            format!("NO [LIMIT] {e}")
        })?);
    }
    Ok(out)
}

/// The FLAGS and PERMANENTFLAGS lines of a mailbox: system flags and
/// its keywords.
fn flags_lines(mbox: &Mailbox, read_only: bool) -> String {
    let mut flags = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for k in mbox.keywords().all() {
        flags.push(' ');
        flags.push_str(k);
    }
    let mut s = format!("* FLAGS ({flags})\r\n");
    if read_only {
        s.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
    } else {
        s.push_str(&format!("* OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted.\r\n"));
    }
    s
}

fn deleted_uids(mbox: &Mailbox, only: Option<&HashSet<u32>>) -> Vec<u32> {
    mbox.messages()
        .iter()
        .filter(|m| m.flags.contains(Flags::DELETED))
        .filter(|m| only.is_none_or(|o| o.contains(&m.uid)))
        .map(|m| m.uid)
        .collect()
}

/// The snapshot positions a sequence set names, ascending. Message
/// numbers beyond the mailbox (and any number in an empty one) are a
/// BAD (RFC 9051 §6.4.4 style); UIDs that do not exist are skipped.
pub(crate) fn indices(mbox: &Mailbox, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
    if uid {
        let uids = resolve_uids(mbox, set);
        return Ok(uids.into_iter().filter_map(|u| position(mbox, u)).collect());
    }
    let n = mbox.messages().len() as u32;
    let value = |s: &SeqOrUid| -> Result<u32, String> {
        let v = match s {
            SeqOrUid::Value(v) => v.get(),
            SeqOrUid::Asterisk => n,
        };
        if v == 0 || v > n {
            return Err("BAD Error in IMAP command: Invalid messageset.".into());
        }
        Ok(v)
    };
    let mut out = Vec::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(s) => (value(s)?, value(s)?),
            Sequence::Range(a, b) => (value(a)?, value(b)?),
        };
        let (lo, hi) = (a.min(b), a.max(b));
        out.extend((lo..=hi).map(|v| v as usize - 1));
        if out.len() > 10_000_000 {
            return Err("BAD Message set too large.".into());
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The existing UIDs a UID set names, ascending; `*` is the largest UID
/// (RFC 3501 §6.4.8: `N:*` always includes the last message).
pub(crate) fn resolve_uids(mbox: &Mailbox, set: &SequenceSet) -> Vec<u32> {
    let msgs = mbox.messages();
    let Some(last) = msgs.last().map(|m| m.uid) else { return Vec::new() };
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => last,
    };
    let mut out = Vec::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(s) => (value(s), value(s)),
            Sequence::Range(a, b) => (value(a), value(b)),
        };
        let (lo, hi) = (a.min(b), a.max(b));
        let start = msgs.partition_point(|m| m.uid < lo);
        let end = msgs.partition_point(|m| m.uid <= hi);
        out.extend(msgs[start..end].iter().map(|m| m.uid));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// UIDs as a compact set: `1:3,7`.
fn uid_set(uids: impl Iterator<Item = u32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for u in uids {
        run = match run {
            Some((a, b)) if u == b + 1 => Some((a, u)),
            Some((a, b)) => {
                parts.push(if a == b { a.to_string() } else { format!("{a}:{b}") });
                Some((u, u))
            }
            None => Some((u, u)),
        };
    }
    if let Some((a, b)) = run {
        parts.push(if a == b { a.to_string() } else { format!("{a}:{b}") });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set([1, 2, 3, 7, 9, 10].into_iter()), "1:3,7,9:10");
        assert_eq!(uid_set([5].into_iter()), "5");
    }
}
