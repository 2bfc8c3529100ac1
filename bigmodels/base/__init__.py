"""The ground floor: what every other floor may use and nothing here imports from above.

The data home (``home``), the devices and processes of this machine (``devices``,
``processes``), the string catalogues (``i18n``), a request's problems in the user's
language (``problems``), numbers as people write them (``formatting``), where a number
came from (``provenance``), the operator token (``access``) and how children of this
package start (``child_process``).
"""
