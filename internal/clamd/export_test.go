package clamd

// ClosesSilently is exported for the tests against a real clamd.
var ClosesSilently = closesSilently
