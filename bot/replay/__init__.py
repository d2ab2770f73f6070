"""Shadow replay (`kefu eval replay`): a merchant's past shopper messages through the whole
pipeline, nothing sent, and a report of what the bot would have done.

- `reading.py`: the exported messages (CSV, any delimiter, errors named by line and column);
- `run.py`: each message through `KefuApp.handle` into a throw-away database, read back;
- `report.py`: the report as Markdown, HTML or JSON;
- `cli.py`: the command's options and progress.
"""
