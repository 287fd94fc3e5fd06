//! Operator tools → master, over `pid/master.ctl`.

use serde::{Deserialize, Serialize};

/// A request from `postern`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Report every service and worker.
    Status,
    /// Re-read main.toml and master.toml; restart workers gracefully.
    Reload,
    /// Restart one service's workers gracefully.
    Restart {
        /// Service name from master.toml.
        service: String,
    },
    /// Stop everything and exit.
    Stop,
}

/// master's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlReply {
    /// The status report.
    Status(StatusReport),
    /// Done; the text says what happened.
    Ok(String),
    /// Refused; the text says why and what to do.
    Error(String),
}

/// Everything `postern status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// master's pid.
    pub master_pid: u32,
    /// When master started, seconds since the epoch.
    pub started: u64,
    /// Its configuration directory.
    pub config_dir: String,
    /// Its queue directory.
    pub queue_dir: String,
    /// One entry per master.toml service.
    pub services: Vec<ServiceStatus>,
}

/// One service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name from master.toml.
    pub name: String,
    /// `inet` or `unix`.
    pub kind: String,
    /// Addresses (inet, with the ports actually bound) or socket paths.
    pub listen: Vec<String>,
    /// Configured worker count.
    pub maxproc: u32,
    /// Running workers.
    pub workers: Vec<WorkerStatus>,
    /// Workers started to replace ones that exited unexpectedly.
    pub restarts: u64,
    /// Set while master waits before starting workers again after
    /// repeated failures: seconds since the epoch when it will retry.
    pub throttled_until: Option<u64>,
}

/// One worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Its pid.
    pub pid: u32,
    /// When it started, seconds since the epoch.
    pub started: u64,
    /// Its generation (bumped at each reload or restart).
    pub generation: u64,
    /// Whether it reported ready.
    pub ready: bool,
    /// Whether it is draining connections before exit.
    pub draining: bool,
}
