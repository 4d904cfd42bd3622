from libs.common.settings import get_settings
from libs.queueops import coalescing
from services.calls.app import create_app

# The status callbacks' dispatch and price messages wait one at a time
# (libs/queueops/coalescing.py); the app factory leaves it off for tests that build the app.
coalescing.install(get_settings().redis_url)
app = create_app()
