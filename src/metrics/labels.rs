//! Label sets of the families: one struct per combination, composed with tuples where a
//! family adds labels to another's.

use prometheus_client::encoding::EncodeLabelSet;

use crate::build_info::BuildInfo;

/// The namespace of a per-namespace family, composed first: `(Netns, PortLabels)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Netns {
    pub netns: String,
}

impl Netns {
    pub fn of(netns: &str) -> Netns {
        Netns {
            netns: netns.to_string(),
        }
    }
}

/// No labels beyond the namespace's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NoLabels {}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NetnsInfoLabels {
    pub inode: String,
    pub container_id: String,
    pub container_name: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    pub runtime: String,
    pub compose_project: String,
    pub compose_service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FamilyState {
    pub family: &'static str,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PortLabels {
    pub direction: &'static str,
    pub port: String,
    pub process: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QueueLabels {
    pub direction: &'static str,
    pub port: String,
    pub process: String,
    pub queue: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabels {
    pub address: String,
    pub port: String,
    pub process: String,
}

/// `socket_type`, not `type`: a label named `type` is reserved by convention (and would
/// read as the metric type); see docs/metrics.md.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UnixTypeState {
    pub socket_type: &'static str,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UnixListenerLabels {
    pub path: String,
    pub process: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PortStateLabels {
    pub port: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OwnerLabels {
    pub direction: &'static str,
    pub port: String,
    pub process: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DestinationLabels {
    pub remote_address: String,
    pub remote_port: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerLabels {
    pub remote_address: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FoldedLabel {
    pub label: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AnomalyKind {
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub revision: &'static str,
    pub branch: &'static str,
    pub build_date: &'static str,
    pub rustc_version: &'static str,
    pub target: &'static str,
}

impl From<BuildInfo> for BuildLabels {
    fn from(build: BuildInfo) -> Self {
        BuildLabels {
            version: build.version,
            revision: build.revision,
            branch: build.branch,
            build_date: build.build_date,
            rustc_version: build.rustc_version,
            target: build.target,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CollectorLabel {
    pub collector: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FamilyLabel {
    pub family: &'static str,
}
