"""Directory sign-on: the LDAP / Active Directory client (imports no other candor part).

`settings` reads `<workspace home>/directory.toml`; `client` checks a password by binding
as the person and reads their groups with a read-only service account; `escaping` puts
values into filters and DNs. The workflow decides what a person may do (candor.workflow);
docs/directory.md is the operator's guide.
"""
