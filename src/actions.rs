//! What staff do, one function per rule: run controls now, propose, approve and end
//! exceptions, decide document access requests. The dashboard's pages, the API and the
//! command line call these and only translate the answer (a page, JSON, a line of text), so
//! the rule and its audit line cannot drift apart between them.
//!
//! Every action is audited before (or in the same transaction as) the change it makes: if the
//! audit line cannot be written, nothing happens.

use chrono::{DateTime, Utc};

use crate::access::{AccessRequest, Decision};
use crate::catalog::Catalog;
use crate::exceptions::Proposal;
use crate::scheduler::{RunNowAccepted, SchedulerHandle};
use crate::store::{Actor, DecideError, ManagedError, ManagedException, Store, StoreError};

/// Where an action came from (recorded in its audit line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Dashboard,
    Api,
    Cli,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Dashboard => "dashboard",
            Via::Api => "api",
            Via::Cli => "cli",
        }
    }
}

/// Why an action did not happen. Each front end maps these to its own answer (HTTP status,
/// page, exit code).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The thing acted on does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is not acceptable as given (each problem names its field).
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Not possible in the thing's current state (approving one's own exception, deciding a
    /// decided request…).
    #[error("{0}")]
    Conflict(String),
    /// Cannot be done just now (no scheduler, the scheduler stopping).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Asks the scheduler to run one control now. The request is audited first (`control.run`);
/// if that fails, nothing is run.
pub async fn run_now(
    store: &Store,
    catalog: &Catalog,
    scheduler: Option<&SchedulerHandle>,
    actor: &Actor,
    control: &str,
    via: Via,
    now: DateTime<Utc>,
) -> Result<RunNowAccepted, ActionError> {
    if catalog.get(control).is_none() {
        return Err(ActionError::NotFound(format!("no control `{control}`")));
    }
    let Some(scheduler) = scheduler else {
        return Err(ActionError::Unavailable(
            "this server does not run controls (its scheduler is off)".into(),
        ));
    };
    store
        .audit(
            actor,
            "control.run",
            &format!("control:{control}"),
            serde_json::json!({"via": via.as_str()}),
            now,
        )
        .await?;
    scheduler
        .run_now(vec![control.to_string()])
        .await
        .map_err(|_| {
            ActionError::Unavailable(
                "the scheduler is shutting down; try again once the server is back".into(),
            )
        })
}

/// Asks for a running run to stop between collections (whichever instance works on it); it
/// closes `cancelled`. Audited (`run.cancel`) in the transaction that records the request.
pub async fn cancel_run(
    store: &Store,
    actor: &Actor,
    run_id: &str,
    via: Via,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    match store
        .request_cancel(run_id, actor, via.as_str(), now)
        .await?
    {
        crate::store::CancelOutcome::Requested | crate::store::CancelOutcome::AlreadyRequested => {
            Ok(())
        }
        crate::store::CancelOutcome::Closed(state) => Err(ActionError::Conflict(format!(
            "the run is not running (it is {state})"
        ))),
        crate::store::CancelOutcome::NotFound => {
            Err(ActionError::NotFound(format!("no run `{run_id}`")))
        }
    }
}

/// Proposes an exception (checked against the catalog and today's date); someone else must
/// approve it. Audited with the creation.
pub async fn propose_exception(
    store: &Store,
    catalog: &Catalog,
    actor: &Actor,
    proposal: &Proposal,
    now: DateTime<Utc>,
) -> Result<ManagedException, ActionError> {
    proposal
        .check(&|id| catalog.get(id).is_some(), now.date_naive())
        .map_err(|problems| {
            ActionError::Invalid(
                problems
                    .into_iter()
                    .map(|(field, problem)| format!("{field}: {problem}"))
                    .collect(),
            )
        })?;
    let id = store.create_managed_exception(proposal, actor, now).await?;
    store
        .managed_exceptions()
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| {
            ActionError::Store(StoreError::Corrupt {
                table: "managed_exceptions",
                id,
                detail: "created, but cannot be read back".into(),
            })
        })
}

fn managed(e: ManagedError) -> ActionError {
    match e {
        ManagedError::Store(e) => ActionError::Store(e),
        ManagedError::NotFound(_) => ActionError::NotFound(e.to_string()),
        other => ActionError::Conflict(other.to_string()),
    }
}

/// Approves a pending exception (not one the actor proposed). Audited with the change.
pub async fn approve_exception(
    store: &Store,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<ManagedException, ActionError> {
    store
        .approve_managed_exception(id, actor, now)
        .await
        .map_err(managed)
}

/// Ends a pending or active exception now. Audited with the change.
pub async fn end_exception(
    store: &Store,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<ManagedException, ActionError> {
    store
        .end_managed_exception(id, actor, now)
        .await
        .map_err(managed)
}

/// A decision as staff name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessVerdict {
    /// Grant, with a link valid this long.
    Approve {
        valid_for: chrono::Duration,
    },
    Deny,
    Revoke,
}

impl AccessVerdict {
    /// `approve`, `deny` or `revoke` (approvals valid for `valid_for`).
    pub fn parse(word: &str, valid_for: chrono::Duration) -> Option<AccessVerdict> {
        match word {
            "approve" => Some(AccessVerdict::Approve { valid_for }),
            "deny" => Some(AccessVerdict::Deny),
            "revoke" => Some(AccessVerdict::Revoke),
            _ => None,
        }
    }
}

/// Decides a document access request (`id` may be an unambiguous prefix). Audited with the
/// decision. With `mail` (visitor email configured), an approval's link is emailed to the
/// requester: the email is queued in the decision's transaction. Without, the caller makes
/// the link from the answer's `expires_at` and shows it once; it is never logged.
pub async fn decide_access(
    store: &Store,
    actor: &Actor,
    id: &str,
    verdict: AccessVerdict,
    note: Option<&str>,
    now: DateTime<Utc>,
    mail: Option<&crate::notify::visitors::Visitors>,
) -> Result<AccessRequest, ActionError> {
    let decision = match verdict {
        AccessVerdict::Approve { valid_for } => {
            if valid_for <= chrono::Duration::zero() {
                return Err(ActionError::Invalid(vec![
                    "valid_for: an approval's link must be valid for some time".into(),
                ]));
            }
            Decision::Approve {
                expires_at: now + valid_for,
            }
        }
        AccessVerdict::Deny => Decision::Deny,
        AccessVerdict::Revoke => Decision::Revoke,
    };
    let decided = async {
        let request = store.find_access_request(id).await?;
        let email = match (mail, decision) {
            (Some(v), Decision::Approve { expires_at }) => {
                Some(v.document_link_event(&request.id, expires_at))
            }
            _ => None,
        };
        store
            .decide_access_request(&request.id, decision, actor, note, now, email.as_ref())
            .await
    };
    Ok(decided.await?)
}

impl From<DecideError> for ActionError {
    fn from(e: DecideError) -> ActionError {
        match e {
            DecideError::Store(e) => ActionError::Store(e),
            DecideError::NotFound(_) => ActionError::NotFound(e.to_string()),
            other => ActionError::Conflict(other.to_string()),
        }
    }
}
