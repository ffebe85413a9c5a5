"""The console's HTTP side: the page, its static assets, the server-sent event stream and the actions."""
