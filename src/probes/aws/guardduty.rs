//! `aws.guardduty.*`: GuardDuty.

use super::Op;

/// The GuardDuty calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[];
