"""Use cases of VLM: every rule and permission check lives here, called with the acting user."""
