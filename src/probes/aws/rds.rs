//! `aws.rds.*`: RDS.

use super::Op;

/// The RDS calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[];
