//! Who is asking: [`Principal`] and its [`PrincipalKind`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An authenticated identity: a human, or an agent in the planner or executor role.
///
/// Principals are produced by a [`Verifier`](crate::identity::Verifier) from a presented
/// credential; nothing the client *claims* (a database user name, a header) becomes a principal.
///
/// ```
/// use sod_core::{Principal, PrincipalKind, AgentRole};
///
/// let planner = Principal::new("agent-7", "https://idp.example", PrincipalKind::Agent(AgentRole::Planner))
///     .with_groups(["planners"])
///     .acting_for("alice");
/// assert!(planner.in_group("planners"));
/// assert_eq!(planner.on_behalf_of.as_deref(), Some("alice"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable identifier within its issuer (the `sub` of a token, the subject of a capability).
    pub id: String,
    /// Who vouched for the identity: an OIDC issuer URL, or the capability issuer's name.
    pub issuer: String,
    /// Groups the principal belongs to, as asserted by the issuer.
    pub groups: Vec<String>,
    /// Human or agent, and the agent's role.
    pub kind: PrincipalKind,
    /// The human this principal acts for, if any. Segregation of duties treats this person as a
    /// requester too: they can approve neither their own nor their agent's requests.
    pub on_behalf_of: Option<String>,
}

impl Principal {
    /// A principal with no groups, acting for nobody.
    pub fn new(id: impl Into<String>, issuer: impl Into<String>, kind: PrincipalKind) -> Self {
        Self {
            id: id.into(),
            issuer: issuer.into(),
            groups: Vec::new(),
            kind,
            on_behalf_of: None,
        }
    }

    /// Replaces the groups.
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the human this principal acts for.
    pub fn acting_for(mut self, human: impl Into<String>) -> Self {
        self.on_behalf_of = Some(human.into());
        self
    }

    /// Whether the principal is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind, self.id)?;
        if let Some(human) = &self.on_behalf_of {
            write!(f, " on behalf of `{human}`")?;
        }
        Ok(())
    }
}

/// Human or agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A person, typically an approver or an operator.
    Human,
    /// Automation, in a planner or executor role.
    Agent(AgentRole),
}

/// The role of an agent in a planner–executor runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentRole {
    /// Decides what to do; holds a capability, never a credential.
    Planner,
    /// Carries out operations that passed every layer.
    Executor,
}

impl PrincipalKind {
    /// The planner role.
    pub const PLANNER: Self = Self::Agent(AgentRole::Planner);
    /// The executor role.
    pub const EXECUTOR: Self = Self::Agent(AgentRole::Executor);

    /// The name used in configuration, tokens and audit records: `human`, `planner`, `executor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Agent(AgentRole::Planner) => "planner",
            Self::Agent(AgentRole::Executor) => "executor",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a principal kind name that is not `human`, `planner` or `executor`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown principal kind `{0}` (expected human, planner or executor)")]
pub struct UnknownPrincipalKind(pub String);

impl FromStr for PrincipalKind {
    type Err = UnknownPrincipalKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(Self::Human),
            "planner" => Ok(Self::PLANNER),
            "executor" => Ok(Self::EXECUTOR),
            other => Err(UnknownPrincipalKind(other.to_owned())),
        }
    }
}

impl Serialize for PrincipalKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PrincipalKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in [
            PrincipalKind::Human,
            PrincipalKind::PLANNER,
            PrincipalKind::EXECUTOR,
        ] {
            assert_eq!(k.as_str().parse::<PrincipalKind>(), Ok(k));
            let json = serde_json::to_string(&k).expect("serialize");
            assert_eq!(
                serde_json::from_str::<PrincipalKind>(&json).expect("parse"),
                k
            );
        }
        assert!("root".parse::<PrincipalKind>().is_err());
    }

    #[test]
    fn display_names_kind_and_human() {
        let p = Principal::new("bot", "iss", PrincipalKind::PLANNER).acting_for("alice");
        assert_eq!(p.to_string(), "planner `bot` on behalf of `alice`");
    }
}
