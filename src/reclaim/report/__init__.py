"""Reports and evidence: the custody log, evidence packs, notices, and their verification."""
