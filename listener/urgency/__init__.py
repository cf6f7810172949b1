"""Urgency: how much a post matters to a webcare team, and why (issue 6).

`context` holds what the score needs beyond the post itself (the time, whether the branch is
open, the author's history with the organisation); the other modules of this package label the
post and add up points, each with a reason the alert shows.
"""
