"""The commands that return data and never print (rclone's fs/operations): plan, verify (and its exact
proof), cleanup. gimport.render turns their results into text; gimport.cli calls them."""
