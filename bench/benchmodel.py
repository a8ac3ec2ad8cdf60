"""benchmodel.py -- persistent classes of the cms and bulk data profiles.

Imported by bench/gendata.py (and by ZODB when gendata.py reopens a
Data.fs it grew earlier): the pickles in the generated files name these
classes as `benchmodel.<Class>`.  Repozo never unpickles records, so the
classes only matter to gendata.py itself.
"""

from persistent import Persistent


class Document(Persistent):
    """A content item: its parts are separate persistent objects (own oid,
    own record), as Plone/Archetypes/Dexterity content with annotations."""

    def __init__(self, uid, path, portal_type, title, body, meta, image=None):
        self.uid = uid
        self.path = path
        self.portal_type = portal_type
        self.title = title          # TextPart
        self.body = body            # TextPart
        self.meta = meta            # Metadata
        self.image = image          # Image or None
        self.workflow_state = 'private'
        self.modified = 0
        self.history = ()           # short tuple of (time, actor, action)


class TextPart(Persistent):
    """A text field (title, body): rewritten as a whole on every edit."""

    def __init__(self, text, mime='text/html'):
        self.text = text
        self.mime = mime


class Metadata(Persistent):
    """Dublin-core-like metadata of a document."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


class Image(Persistent):
    """Image-like payload kept as a bytes attribute (not a ZODB blob)."""

    def __init__(self, data, content_type, width, height):
        self.data = data
        self.content_type = content_type
        self.width = width
        self.height = height


class Item(Persistent):
    """One small record of a bulk import."""

    def __init__(self, ident, title, number, created, state):
        self.ident = ident
        self.title = title
        self.number = number
        self.created = created
        self.state = state
