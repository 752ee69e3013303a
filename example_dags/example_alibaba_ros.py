"""Alibaba Cloud ROS: wait for two AI tasks, then collect the templates they produced.

Run it against the bundled emulator with ``make demo``; against ROS, create an
``alibaba_ros`` connection (AccessKey ID, AccessKey Secret; the RAM user needs
``ros:GetAITask``) and trigger with ``{"generate_task_id": "t-...", "fix_task_id": "t-..."}``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_task_runs.alibaba.operators import RosFetchAITaskOutputOperator
from airflow_task_runs.alibaba.sensors import RosAITaskSensor

with DAG(
    dag_id="example_alibaba_ros",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "alibaba", "airflow-task-runs"],
    params={
        "generate_task_id": Param(
            "t-demo-generate-template", type="string", description="ROS AI task id of a GenerateTemplate task"
        ),
        "fix_task_id": Param("t-demo-fix-template", type="string", description="ROS AI task id of a FixTemplate task"),
        "output_uri": Param(
            "file:///tmp/airflow-task-runs-demo/alibaba/",
            type="string",
            description="Folder (ObjectStoragePath URI, ending with /) that receives the templates",
        ),
        "s3_uri": Param(
            "s3://my-bucket/demo/alibaba/",
            type="string",
            description="s3:// folder for a copy; credentials: boto3's default chain (AWS_* variables)",
        ),
    },
):
    wait_for_generate = RosAITaskSensor(
        task_id="wait_for_generate_template",
        ai_task_id="{{ params.generate_task_id }}",
        poke_interval=1,
        timeout=300,
        deferrable=True,
    )
    wait_for_fix = RosAITaskSensor(
        task_id="wait_for_fix_template",
        ai_task_id="{{ params.fix_task_id }}",
        poke_interval=1,
        timeout=300,
        mode="poke",
    )
    # The generated template (under TaskOutput.Result) as a YAML file, ready for CreateStack.
    generated_template_yaml = RosFetchAITaskOutputOperator(
        task_id="generated_template_to_yaml",
        ai_task_id="{{ params.generate_task_id }}",
        output_field="Result",
        destination="{{ params.output_uri }}generated-template.yaml",
    )
    # The whole TaskOutput of the fix, as JSON in the folder (ros-ai-task-<id>-FixTemplate.json).
    fixed_output_json = RosFetchAITaskOutputOperator(
        task_id="fixed_output_to_folder",
        ai_task_id="{{ params.fix_task_id }}",
        destination="{{ params.output_uri }}",
    )
    # The generated template as YAML in s3:// (boto3's default chain; make demo points it at the emulator).
    generated_template_s3 = RosFetchAITaskOutputOperator(
        task_id="generated_template_to_s3",
        ai_task_id="{{ params.generate_task_id }}",
        output_field="Result",
        destination="{{ params.s3_uri }}{{ run_id | replace(':', '_') }}/generated-template.yaml",
        asset_alias="ros_templates",
    )
    fixed_output_xcom = RosFetchAITaskOutputOperator(
        task_id="fixed_output_to_xcom",
        ai_task_id="{{ params.fix_task_id }}",
    )
    wait_for_generate >> [generated_template_yaml, generated_template_s3]
    wait_for_fix >> [fixed_output_json, fixed_output_xcom]
