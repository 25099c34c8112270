//! The node daemon's actor tree (LockActor, CrmActor, LrmActor, WorkerPool,
//! WatchdogActor): thin shells around [`crate::core`].
//!
//! Not built yet: this module is the place for it (issue "Node runtime").
//! Until then the core runs only inside the simulator.
