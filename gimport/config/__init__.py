"""Settings: the typed, frozen settings (settings), reading gimport.toml into them (load), and the typed
getters for each kind of value (values)."""
