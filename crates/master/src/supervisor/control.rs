//! The control socket `pid/master.ctl` (`postern status|reload|restart|stop`):
//! accepting with back-off, one request per connection read within a
//! deadline, and the answers, computed in the event loop.

use super::{Event, Master};
use mail_ipc::accept::AcceptBackoff;
use mail_ipc::control::{ControlReply, ControlRequest};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a client may take to send its request. The socket is root's
/// (mode 0600), but a stuck `postern` must not hold a task and an fd for
/// ever.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Control connections served at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 16;

pub(super) async fn accept_control(
    listener: tokio::net::UnixListener,
    tx: mpsc::UnboundedSender<Event>,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = AcceptBackoff::new();
    loop {
        let Ok(slot) = std::sync::Arc::clone(&slots).acquire_owned().await else { return };
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff.succeeded();
                stream
            }
            Err(e) => {
                tokio::time::sleep(backoff.failed("pid/master.ctl", &e)).await;
                continue;
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let read = mail_ipc::read_frame_async::<ControlRequest>(&mut stream, 1 << 16);
            let req = match tokio::time::timeout(REQUEST_DEADLINE, read).await {
                Ok(Ok(Some(req))) => req,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => return tracing::warn!("pid/master.ctl: bad request: {e}"),
                Err(_) => {
                    return tracing::warn!(
                        "pid/master.ctl: no request within {}s: closing",
                        REQUEST_DEADLINE.as_secs()
                    );
                }
            };
            let (reply_tx, reply_rx) = oneshot::channel();
            if tx.send(Event::Control { req, reply: reply_tx }).is_err() {
                return;
            }
            if let Ok(reply) = reply_rx.await {
                let _ = tokio::time::timeout(
                    REQUEST_DEADLINE,
                    mail_ipc::write_frame_async(&mut stream, &reply),
                )
                .await;
            }
        });
    }
}

impl Master {
    pub(super) fn on_control(&mut self, req: ControlRequest) -> ControlReply {
        match req {
            ControlRequest::Status => ControlReply::Status(self.report()),
            ControlRequest::Reload => match self.reload() {
                Ok(text) => {
                    tracing::info!("{text}");
                    ControlReply::Ok(text)
                }
                Err(text) => {
                    tracing::warn!("{text}");
                    ControlReply::Error(text)
                }
            },
            ControlRequest::Restart { service } => {
                // `smtp` names every service called smtp (inet and unix);
                // `smtp/unix` only the one with that id.
                let ids: Vec<String> = self
                    .services
                    .iter()
                    .filter(|s| s.def.id == service || s.def.name == service)
                    .map(|s| s.def.id.clone())
                    .collect();
                if ids.is_empty() {
                    let names: Vec<&str> =
                        self.services.iter().map(|s| s.def.id.as_str()).collect();
                    return ControlReply::Error(format!(
                        "no service named {service:?} in master.toml; services are: {}",
                        names.join(", ")
                    ));
                }
                for id in &ids {
                    self.restart(id);
                    tracing::info!("service {id}: restarting");
                }
                ControlReply::Ok(format!("service {} restarting", ids.join(", ")))
            }
            ControlRequest::Stop => {
                self.begin_stop();
                ControlReply::Ok("stopping".into())
            }
        }
    }
}
