//! `aws.monitoring.*`: CloudWatch alarms and Route 53 health checks.

use super::Op;

/// The CloudWatch alarms and Route 53 health checks calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[];
