"""The audit trail: every write by a user, an agent or the controller, in an append-only,
hash-chained table (who, when, what, before and after) that `suanwang audit verify` checks."""
