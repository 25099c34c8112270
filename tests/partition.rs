//! One partitioned node must never take the majority down. Found by
//! black-box testing: cutting off the node that was both Raft leader and
//! HA master made the other two lose quorum, and their election outlasted
//! their watchdog client timeout, so every node fenced itself.
//!
//! In a 3-node cluster of real daemons, the Raft leader (also the master,
//! and then not the master) and the master that is not the leader are cut
//! off, in turn, for longer than a lease. The majority must keep or regain
//! quorum without any fence of its own, the minority fences itself, its
//! services move once (the others do not move at all), and the observer
//! sees nothing run twice.

mod observer;

use std::time::{Duration, Instant};

use observer::*;

const NODES: usize = 3;
const SERVICES: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Victim {
    /// The Raft leader, which is also the master.
    LeaderAndMaster,
    /// The Raft leader, which is not the master.
    LeaderOnly,
    /// The master, which is not the Raft leader.
    MasterOnly,
}

#[test]
fn partitioning_the_leader_or_the_master_never_fences_the_majority() {
    let mut t = setup(NODES, SERVICES, "");
    let cases = [
        Victim::LeaderAndMaster,
        Victim::MasterOnly,
        Victim::LeaderOnly,
        Victim::LeaderAndMaster,
        Victim::MasterOnly,
    ];
    for case in cases {
        let master = t.master().expect("a master");
        let victim = match case {
            Victim::LeaderAndMaster => {
                t.make_leader(master, Duration::from_secs(60));
                master
            }
            Victim::LeaderOnly => {
                let other = (master + 1) % NODES;
                t.make_leader(other, Duration::from_secs(60));
                other
            }
            Victim::MasterOnly => {
                t.make_leader((master + 1) % NODES, Duration::from_secs(60));
                master
            }
        };
        // The election above may have moved the master: look again.
        std::thread::sleep(Duration::from_secs(2));
        let name = t.cluster.nodes[victim].name.clone();
        let majority: Vec<usize> = (0..NODES).filter(|i| *i != victim).collect();
        let fences_before: Vec<String> = majority.iter().map(|i| t.fence_log(*i)).collect();
        let homes: Vec<usize> = (0..SERVICES).map(|s| t.home(s)).collect();
        let pids_before: Vec<Vec<i32>> = (0..SERVICES).map(|s| t.cluster.service_pids(s)).collect();
        let at = Instant::now();
        t.inflict(victim, Fault::Partition);
        for s in (0..SERVICES).filter(|s| homes[*s] == victim) {
            t.wait_running(s, Some(&name), RECOVERY_BOUND);
        }
        let moved = at.elapsed();
        // Stay cut off well past a lease and a watchdog timeout.
        std::thread::sleep(Duration::from_secs(8).saturating_sub(at.elapsed()) + Duration::from_secs(2));
        for (k, i) in majority.iter().enumerate() {
            assert!(
                t.daemon_alive(*i),
                "{case:?}: majority node {} died after {name} was cut off",
                t.cluster.nodes[*i].name
            );
            assert_eq!(
                t.fence_log(*i),
                fences_before[k],
                "{case:?}: majority node {} fenced itself after {name} was cut off",
                t.cluster.nodes[*i].name
            );
        }
        assert!(
            t.fence_log(victim).contains("fencing node"),
            "{case:?}: the cut-off {name} did not fence itself"
        );
        for s in (0..SERVICES).filter(|s| homes[*s] != victim) {
            assert_eq!(
                t.cluster.service_pids(s),
                pids_before[s],
                "{case:?}: proc:svc{s} moved or restarted though its node stayed in the majority"
            );
        }
        println!("{case:?}: {name} cut off; its services ran elsewhere after {moved:.1?}; the majority kept going");
        t.restart(victim, Fault::Partition);
        t.cluster.wait_settled(RECOVERY_BOUND).unwrap();
        t.wait_all_running(SERVICES, RECOVERY_BOUND);
        t.observer.check_no_stale_start();
    }
}
