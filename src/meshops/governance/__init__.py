"""Federated computational governance: identities, roles, policies as code, access grants,
governed reads (masking, row filters), usage and audit."""
