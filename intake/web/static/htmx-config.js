// htmx settings for pages under a strict Content-Security-Policy and holding case data:
// no inline styles or eval, no scripts from swapped HTML, and no copies of pages in the
// browser's localStorage (the history cache), so going back asks the server again.
htmx.config.includeIndicatorStyles = false;
htmx.config.allowEval = false;
htmx.config.allowScriptTags = false;
htmx.config.historyCacheSize = 0;
htmx.config.refreshOnHistoryMiss = true;
htmx.config.selfRequestsOnly = true;
