//! The arguments of `idemkv demo` and their range checks.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// Arguments of `idemkv demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Demo directory; wiped and recreated at the start.
    #[arg(long, default_value = "./idemkv-data")]
    pub path: PathBuf,
    /// Unique events to deliver.
    #[arg(long, default_value_t = 100_000)]
    pub events: u32,
    /// Share of events that get extra duplicate deliveries (0..=1).
    #[arg(long, default_value_t = 0.2)]
    pub dup_rate: f64,
    /// Event sources, i.e. namespaces (stripe, github, shopify, …).
    #[arg(long, default_value_t = 3)]
    pub sources: usize,
    /// Async worker threads of the server process.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Requests the provider keeps in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seed of the delivery schedule and the fault injection.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Do not kill the server in the middle of the run.
    #[arg(long)]
    pub no_crash: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Pass `--audit` to the server process (set from the global flag).
    #[arg(skip)]
    pub audit: bool,
}

impl DemoArgs {
    /// Refuses values outside the ranges the demo supports.
    pub fn validate(&self) -> Result<()> {
        if self.events == 0 || self.events > 10_000_000 {
            bail!("--events must be from 1 to 10000000, not {}", self.events);
        }
        if !(0.0..=1.0).contains(&self.dup_rate) {
            bail!("--dup-rate must be from 0 to 1, not {}", self.dup_rate);
        }
        if self.sources == 0 || self.sources > 64 {
            bail!("--sources must be from 1 to 64, not {}", self.sources);
        }
        if self.workers == 0 || self.workers > 1024 {
            bail!("--workers must be from 1 to 1024, not {}", self.workers);
        }
        if self.concurrency == 0 || self.concurrency > 4096 {
            bail!("--concurrency must be from 1 to 4096, not {}", self.concurrency);
        }
        Ok(())
    }
}
