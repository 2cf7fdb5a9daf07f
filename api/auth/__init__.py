"""Identity for the operator API: local users (argon2), bearer tokens (JWT), OIDC issuers, sign-in limits."""
