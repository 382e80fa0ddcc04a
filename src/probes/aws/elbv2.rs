//! `aws.elbv2.*`: Elastic Load Balancing v2.

use super::Op;

/// The Elastic Load Balancing v2 calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[];
