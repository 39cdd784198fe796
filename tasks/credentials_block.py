"""Reading a prefect-aws `AwsCredentials` block for the S3 clients (`upload_jobs.storage.
credentials`, which cannot import Prefect itself), installed when the `tasks` package loads."""

from __future__ import annotations

from upload_jobs.errors import CredentialsUnavailable
from upload_jobs.storage.credentials import BLOCK_SETTING, BlockCredentials, use_block_loader


def load_credentials_block(name: str) -> BlockCredentials:
    """Read the block from the Prefect server; one sentence saying what to do when it cannot."""
    # Imported here: prefect-aws imports boto3 and aiobotocore, which most runs never need.
    from prefect.settings import get_current_settings

    server = get_current_settings().api.url
    if not server:  # a temporary server would start (20 s) only to hold no block
        raise CredentialsUnavailable(
            f"The AWS credentials block {name!r} ({BLOCK_SETTING}) lives on a Prefect server, "
            "and none is configured: set PREFECT_API_URL to the server that holds it."
        )
    from prefect_aws import AwsCredentials

    try:
        block: AwsCredentials = AwsCredentials.load(name, _sync=True)  # type: ignore[assignment,call-arg]
    except ValueError:  # Prefect's "Unable to find block document named ..."
        raise CredentialsUnavailable(
            f"No AWS credentials block {name!r} ({BLOCK_SETTING}) on the Prefect server at "
            f"{server}: save it there with `upload-jobs setup --credentials-block {name}`."
        ) from None
    except Exception as exc:  # the server did not answer, or answered with an error
        raise CredentialsUnavailable(
            f"Could not read the AWS credentials block {name!r} ({BLOCK_SETTING}) from the "
            f"Prefect server: {type(exc).__name__}. Is the server at PREFECT_API_URL up?"
        ) from None
    return BlockCredentials(
        name=name,
        session=block.get_boto3_session(),
        region=block.region_name,
        endpoint_url=block.aws_client_parameters.endpoint_url,
    )


def read_blocks_from_prefect() -> None:
    """Let this process's S3 clients read their key from the block the settings name."""
    use_block_loader(load_credentials_block)
