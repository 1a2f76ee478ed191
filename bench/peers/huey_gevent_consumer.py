"""huey_consumer with gevent's monkey patching applied first, as Huey's docs ask for greenlet workers."""

from gevent import monkey

monkey.patch_all()

from huey.bin.huey_consumer import consumer_main  # noqa: E402

if __name__ == "__main__":
    consumer_main()
