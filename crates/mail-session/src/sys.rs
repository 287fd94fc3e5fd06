//! The one system call std does not wrap safely here: receiving a
//! descriptor with SCM_RIGHTS and taking ownership of it.
#![allow(unsafe_code)]

use crate::Error;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Reads the one-byte marker and the descriptor sent with it. Extra
/// descriptors (a confused or hostile peer) are closed, not leaked.
pub(crate) fn recv_fd(conn: &UnixStream) -> Result<Option<OwnedFd>, Error> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = loop {
        match recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::Error::EINTR) => continue,
            other => break other.map_err(|e| Error::Sys("recvmsg", e))?,
        }
    };
    let mut received: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs().map_err(|e| Error::Sys("recvmsg", e))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in this process
                // for this message (SCM_RIGHTS); nothing else refers to
                // it, so this OwnedFd is its only owner and closes it.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.bytes == 0 {
        return Ok(None);
    }
    let mut it = received.into_iter();
    Ok(it.next())
}
