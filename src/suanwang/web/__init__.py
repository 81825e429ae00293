"""The web dashboard: server-rendered pages for the regulator, providers and tenants (zh-CN / en)."""
