"""Microsoft 365 (Exchange Online) as the source: signing in with Microsoft's own library, MSAL. The only
package that imports msal."""
