//! The benchmarks of `hactor-bench`, each on real daemons started as
//! processes: [`failover`] (failover times after a hard node loss, per
//! timing profile), [`timeline`] (the daemons' failover timeline against
//! the simulator's) and [`scale`] (one node with 100 000 resources: API
//! times, idle CPU and disk writes).
//!
//! Here rather than in `node` because the timeline compares with the
//! simulator (`sim`), which `node` may not import; the clusters they run
//! are `node::local_cluster`'s.

pub mod failover;
pub mod scale;
pub mod timeline;
