"""The Executor stage (act): the actions asset that delivers approved proposals, at most once each."""
