"""The WebDAV front end: the store's tree (the FUSE mount's tree, with the same meaning)
served over WebDAV with WsgiDAV on cheroot, for desktops that mount WebDAV natively
(macOS Finder and ``mount_webdav``, Windows ``net use``, Linux davfs2 and gio).

May import ``store`` (its engine and services faces), ``wsgidav`` and ``cheroot``; never
``fusefs`` (the mount's daemon imports this package for ``sessionfs mount --webdav``).
Nothing else imports it: ``sessionfs serve`` reaches it through the ``sessionfs.commands``
entry-point group.
"""
