"""The release, written into every manifest (one place, so that lower layers never import the
package root for it)."""

__version__ = "0.1.0"
