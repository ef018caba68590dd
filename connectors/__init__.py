"""The reference connectors shipped with h5pyvol (installed as h5pyvol.connectors)."""
