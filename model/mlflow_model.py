"""MLflow "models from code" entry: MLflow copies and runs this file to build the pyfunc.

Never imported by the platform itself (`churn_components.registry.register` hands its
path to `mlflow.pyfunc.save_model`), so the `set_model` call below is not
import-time work of any module we import. Loading needs the churn-platform
package installed (the serving and components images have it).
"""

from mlflow.models import set_model

from churn_model.pyfunc import ChurnBundleModel

set_model(ChurnBundleModel())
