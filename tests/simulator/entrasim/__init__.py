"""A local Microsoft Entra ID + Microsoft Graph (beta) simulator for hardware OATH tokens.

Test infrastructure of the tokenops.entra collection; not part of the built collection.
See docs/simulator.md for the seed format, the admin API, fault injection and error codes.
"""
