//! Executing one LRM command through a resource agent (upstream
//! `exec_resource_agent`): the part of the LRM that runs in a worker.
//!
//! Pure decision logic over [`AgentHost`], which the simulator implements
//! with simulated guests and the node daemon with real agents.

use super::event::Event;
use super::status::ResourceConfig;
use super::types::{ExitCode, NodeName, ServiceState, sid_type};

/// What a worker needs from its surroundings: who it is, where to log,
/// and the resource agents (upstream's plugins).
pub trait AgentHost {
    /// This node's name.
    fn nodename(&self) -> &str;
    /// Reports an event (log line, notification).
    fn log(&mut self, event: Event);
    /// Whether an agent exists for this service type.
    fn agent_known(&self, kind: &str) -> bool;
    /// Whether anything of the service runs here (what a stop must end).
    fn agent_running(&mut self, sid: &str) -> bool;
    /// Whether it runs and works (an agent's monitor or health check); a
    /// service that runs but fails it is restarted by a `started`
    /// command. Without a monitor of its own: [`AgentHost::agent_running`].
    fn agent_healthy(&mut self, sid: &str) -> bool {
        self.agent_running(sid)
    }
    fn agent_start(&mut self, sid: &str);
    fn agent_shutdown(&mut self, sid: &str, timeout: Option<i64>);
    /// Moves the guest to `target`; true when it left this node.
    fn agent_migrate(&mut self, sid: &str, target: &str, online: bool) -> bool;
}

/// One agent action as the LRM hands it to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub sid: String,
    /// `None` for the untracked stop jobs of a node shutdown.
    pub uid: Option<String>,
    /// The command: the service state the master requested.
    pub command: ServiceState,
    pub target: Option<NodeName>,
    pub timeout: Option<i64>,
    /// The service's configuration when the job was queued.
    pub config: Option<ResourceConfig>,
}

/// Runs one command and returns upstream's exit code.
pub fn execute(host: &mut dyn AgentHost, job: &JobSpec) -> ExitCode {
    let sid = job.sid.as_str();
    let kind = sid_type(sid).to_string();
    if !host.agent_known(&kind) {
        host.log(Event::ServiceTypeNotImplemented { kind });
        return ExitCode::UnknownServiceType;
    }
    let Some(config) = &job.config else {
        host.log(Event::MissingResourceConfig { sid: sid.to_string() });
        return ExitCode::UnknownService;
    };
    if job.command == ServiceState::Error {
        host.log(Event::ServiceInErrorState { sid: sid.to_string() });
        return ExitCode::Success;
    }
    if config.node.as_deref() != Some(host.nodename()) {
        host.log(Event::ServiceNotOnThisNode { sid: sid.to_string() });
        return ExitCode::WrongNode;
    }
    match job.command {
        ServiceState::Started => {
            if host.agent_healthy(sid) {
                return ExitCode::Success;
            }
            host.log(Event::StartingService { sid: sid.to_string() });
            host.agent_start(sid);
            if host.agent_healthy(sid) {
                host.log(Event::ServiceStarted { sid: sid.to_string() });
                ExitCode::Success
            } else {
                host.log(Event::UnableToStart { sid: sid.to_string() });
                ExitCode::Error
            }
        }
        ServiceState::RequestStop | ServiceState::Stopped => {
            if !host.agent_running(sid) {
                return ExitCode::Success;
            }
            host.log(Event::StoppingService {
                sid: sid.to_string(),
                timeout: job.timeout,
            });
            host.agent_shutdown(sid, job.timeout);
            if host.agent_running(sid) {
                host.log(Event::UnableToStop { sid: sid.to_string() });
                ExitCode::Error
            } else {
                host.log(Event::ServiceStopped { sid: sid.to_string() });
                ExitCode::Success
            }
        }
        ServiceState::Migrate | ServiceState::Relocate | ServiceState::RequestStartBalance => {
            let Some(target) = job.target.as_deref() else {
                return ExitCode::InvalidParameter;
            };
            if config.node.as_deref() == Some(target) {
                return ExitCode::Success;
            }
            if job.command == ServiceState::RequestStartBalance && host.agent_running(sid) {
                host.log(Event::IgnoringRebalanceRunning { sid: sid.to_string() });
                return ExitCode::Ignored;
            }
            let online = job.command == ServiceState::Migrate;
            if host.agent_migrate(sid, target, online) {
                ExitCode::Success
            } else {
                host.log(Event::NotMoved { sid: sid.to_string() });
                ExitCode::Error
            }
        }
        other => {
            host.log(Event::ImplementMe {
                cmd: other.as_str().to_string(),
            });
            ExitCode::UnknownCommand
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::RequestState;

    /// A host with one guest that is or is not running.
    struct Host {
        running: bool,
        start_works: bool,
        events: Vec<String>,
    }

    impl AgentHost for Host {
        fn nodename(&self) -> &str {
            "node1"
        }
        fn log(&mut self, event: Event) {
            self.events.push(event.to_string());
        }
        fn agent_known(&self, kind: &str) -> bool {
            kind == "vm"
        }
        fn agent_running(&mut self, _sid: &str) -> bool {
            self.running
        }
        fn agent_start(&mut self, _sid: &str) {
            self.running = self.start_works;
        }
        fn agent_shutdown(&mut self, _sid: &str, _timeout: Option<i64>) {
            self.running = false;
        }
        fn agent_migrate(&mut self, _sid: &str, _target: &str, _online: bool) -> bool {
            true
        }
    }

    fn job(sid: &str, command: ServiceState, node: &str) -> JobSpec {
        JobSpec {
            sid: sid.into(),
            uid: Some("u1".into()),
            command,
            target: None,
            timeout: None,
            config: Some(ResourceConfig::new(node, RequestState::Started)),
        }
    }

    #[test]
    fn start_reports_success_or_error_with_upstream_wording() {
        let mut host = Host {
            running: false,
            start_works: true,
            events: vec![],
        };
        assert_eq!(
            execute(&mut host, &job("vm:100", ServiceState::Started, "node1")),
            ExitCode::Success
        );
        assert_eq!(
            host.events,
            ["starting service vm:100", "service status vm:100 started"]
        );
        let mut host = Host {
            running: false,
            start_works: false,
            events: vec![],
        };
        assert_eq!(
            execute(&mut host, &job("vm:100", ServiceState::Started, "node1")),
            ExitCode::Error
        );
        assert_eq!(
            host.events.last().map(String::as_str),
            Some("unable to start service vm:100")
        );
    }

    #[test]
    fn refuses_foreign_unknown_and_unconfigured_services() {
        let mut host = Host {
            running: false,
            start_works: true,
            events: vec![],
        };
        assert_eq!(
            execute(&mut host, &job("vm:100", ServiceState::Started, "node2")),
            ExitCode::WrongNode
        );
        assert_eq!(
            execute(&mut host, &job("xx:100", ServiceState::Started, "node1")),
            ExitCode::UnknownServiceType
        );
        let mut unconfigured = job("vm:100", ServiceState::Started, "node1");
        unconfigured.config = None;
        assert_eq!(execute(&mut host, &unconfigured), ExitCode::UnknownService);
        assert!(!host.running, "nothing may start on a refused command");
    }

    /// A service that runs but fails its health check until restarted.
    struct Unhealthy {
        restarted: bool,
        events: Vec<String>,
    }

    impl AgentHost for Unhealthy {
        fn nodename(&self) -> &str {
            "node1"
        }
        fn log(&mut self, event: Event) {
            self.events.push(event.to_string());
        }
        fn agent_known(&self, _kind: &str) -> bool {
            true
        }
        fn agent_running(&mut self, _sid: &str) -> bool {
            true
        }
        fn agent_healthy(&mut self, _sid: &str) -> bool {
            self.restarted
        }
        fn agent_start(&mut self, _sid: &str) {
            self.restarted = true;
        }
        fn agent_shutdown(&mut self, _sid: &str, _timeout: Option<i64>) {}
        fn agent_migrate(&mut self, _sid: &str, _target: &str, _online: bool) -> bool {
            false
        }
    }

    #[test]
    fn a_running_but_unhealthy_service_is_started_again() {
        let mut host = Unhealthy {
            restarted: false,
            events: vec![],
        };
        assert_eq!(
            execute(&mut host, &job("proc:web", ServiceState::Started, "node1")),
            ExitCode::Success
        );
        assert!(host.restarted);
        assert_eq!(
            host.events,
            ["starting service proc:web", "service status proc:web started"]
        );
        // A stop goes by whether anything runs, healthy or not.
        host.restarted = false;
        host.events.clear();
        assert_eq!(
            execute(&mut host, &job("proc:web", ServiceState::Stopped, "node1")),
            ExitCode::Error
        );
        assert_eq!(
            host.events.last().map(String::as_str),
            Some("unable to stop service proc:web (still running)")
        );
    }

    #[test]
    fn stopping_a_stopped_service_is_silent_success() {
        let mut host = Host {
            running: false,
            start_works: true,
            events: vec![],
        };
        assert_eq!(
            execute(&mut host, &job("vm:100", ServiceState::Stopped, "node1")),
            ExitCode::Success
        );
        assert!(host.events.is_empty());
    }
}
