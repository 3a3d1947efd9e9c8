"""billing-svc's pure domain: arithmetic, accounts and invoices (no I/O)."""
