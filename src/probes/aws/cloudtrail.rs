//! `aws.cloudtrail.*`: CloudTrail.

use super::Op;

/// The CloudTrail calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[];
