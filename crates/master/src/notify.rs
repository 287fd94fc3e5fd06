//! systemd's service notifications (sd_notify(3)) for `Type=notify`:
//! `READY=1` once every service's workers have reported ready (the moment
//! `--ready-json` prints), `RELOADING=1` … `READY=1` around a reload, and
//! `STOPPING=1` when a stop begins. Without `$NOTIFY_SOCKET` (no systemd,
//! `postern start`, tests) each call does nothing. Workers never see the
//! variable: master starts them with a cleared environment.

use sd_notify::NotifyState;

pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub(crate) fn reloading() {
    // systemd wants the reload's start time with RELOADING=1.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub(crate) fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}
