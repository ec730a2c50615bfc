"""Staff: accounts and sites, sign-in with throttling and server-side sessions, two-factor codes,
and the access rules every staff page goes through."""
