//! The plan: workloads P1 to P3 and the systems and thread counts each one
//! runs.

use crate::Opts;
use crate::measure::Work;
use crate::systems::Spec;

/// A workload and the rows it runs.
pub struct Workload {
    /// Name, the first column (e.g. `P1 lookup`).
    pub name: &'static str,
    /// What each operation is.
    pub work: Work,
    /// The idemkv row the others are compared with.
    pub reference: &'static str,
    /// The systems and their thread counts, reference first.
    pub runs: Vec<(Spec, usize)>,
}

/// P1 to P3, sized by `opts`.
pub fn plan(opts: &Opts) -> Vec<Workload> {
    use Spec::*;
    vec![
        Workload {
            name: "P1 lookup",
            work: Work::Lookup(opts.lookup_keys),
            reference: "idemkv-durable",
            runs: vec![
                (Idemkv(true), 2),
                (Idemkv(false), 2),
                (Sled(false), 2),
                (Striped, 2),
                (Sqlite(false), 2),
                (Redis(false), 2),
            ],
        },
        Workload {
            name: "P2 claim+complete buffered",
            work: Work::Cycle,
            reference: "idemkv-buffered",
            runs: vec![
                (Idemkv(false), 2),
                (Sled(false), 2),
                (Striped, 2),
                (Sqlite(false), 2),
                (Redis(false), 1),
                (Redis(false), 2),
                (Redis(false), 50),
            ],
        },
        Workload {
            name: "P3 claim+complete durable",
            work: Work::Cycle,
            reference: "idemkv-durable-async",
            runs: vec![
                (IdemkvAsync, 64),
                (Idemkv(true), 64),
                (Sled(true), 64),
                (Striped, 64),
                (Sqlite(true), 64),
                (Redis(true), 64),
            ],
        },
    ]
}
